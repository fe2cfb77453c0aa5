//! The bucket: S3-compatible object storage through `object_store`
//! (reqwest + rustls with the process's ring provider; no OpenSSL).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::Digest;

use super::plan::{LocalFile, PathClass, RemoteObject, content_type};
use super::{ObjectPublishConfig, ObjectTarget};

/// The user metadata key holding an object's SHA-256 (`x-amz-meta-sha256`).
const SHA256_METADATA: &str = "sha256";

/// A site's prefix in one bucket.
pub struct Bucket {
    store: AmazonS3,
    target: ObjectTarget,
    multipart_threshold: u64,
    part_size: usize,
}

impl Bucket {
    /// Credentials, region and endpoint come from the standard `AWS_*`
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`); the
    /// configuration's endpoint overrides the environment's. An `http://`
    /// endpoint (a server on loopback or in a private network) is allowed
    /// because it was named.
    pub fn connect(target: &ObjectTarget, config: &ObjectPublishConfig) -> Result<Self> {
        crate::http::install_crypto_provider();
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&target.bucket)
            .with_retry(RetryConfig {
                max_retries: config.max_retries,
                retry_timeout: Duration::from_secs(120),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(config.request_timeout),
            );
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let store = builder.build().with_context(|| {
            format!("setting up {target}: check the AWS_* environment variables")
        })?;
        Ok(Self {
            store,
            target: target.clone(),
            multipart_threshold: config.multipart_threshold,
            part_size: config.part_size,
        })
    }

    fn key(&self, rel: &str) -> Result<ObjectPath> {
        let full = if self.target.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.target.prefix)
        };
        ObjectPath::parse(&full).with_context(|| format!("{rel} is not a valid object name"))
    }

    /// Every object under the prefix, by site-relative path.
    pub async fn list(&self) -> Result<BTreeMap<String, RemoteObject>> {
        let prefix =
            (!self.target.prefix.is_empty()).then(|| ObjectPath::from(self.target.prefix.as_str()));
        let listing: Vec<_> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.target))?;
        let strip = if self.target.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.target.prefix)
        };
        Ok(listing
            .into_iter()
            .filter_map(|meta| {
                let rel = meta.location.as_ref().strip_prefix(&strip)?.to_string();
                Some((
                    rel,
                    RemoteObject {
                        size: meta.size,
                        e_tag: meta.e_tag,
                    },
                ))
            })
            .collect())
    }

    /// The SHA-256 recorded with the object at upload, if any.
    pub async fn stored_sha256(&self, rel: &str) -> Result<Option<String>> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.key(rel)?, options)
            .await
            .with_context(|| format!("reading the metadata of {}", self.target.url(rel)))?;
        Ok(got.attributes.iter().find_map(|(attr, value)| match attr {
            Attribute::Metadata(k) if k == SHA256_METADATA => Some(value.to_string()),
            _ => None,
        }))
    }

    /// A small object's bytes (at most `cap`); `None` when it does not exist.
    pub async fn read_small(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let reading = || format!("reading {}", self.target.url(rel));
        let got = match self.store.get(&self.key(rel)?).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            other => other.with_context(reading)?,
        };
        if got.meta.size > cap {
            bail!("{} is over {cap} bytes", self.target.url(rel));
        }
        Ok(Some(got.bytes().await.with_context(reading)?.to_vec()))
    }

    /// Uploads the site file `file` (under `root`) with its cache rule, type
    /// and SHA-256, re-hashing the bytes as they are read: a file that
    /// changed since it was planned is not published.
    pub async fn upload(&self, root: &Path, file: &LocalFile) -> Result<()> {
        self.put(root, file)
            .await
            .with_context(|| format!("uploading {} to {}", file.path, self.target.url(&file.path)))
    }

    /// Copies one object to another name inside the bucket (server-side:
    /// no bytes travel; headers and metadata go with it).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.store
            .copy(&self.key(from)?, &self.key(to)?)
            .await
            .with_context(|| {
                format!(
                    "copying {} to {}",
                    self.target.url(from),
                    self.target.url(to)
                )
            })
    }

    async fn put(&self, root: &Path, file: &LocalFile) -> Result<()> {
        let key = self.key(&file.path)?;
        let mut source = mlld_fsutil::open_regular(&root.join(&file.path))?;
        let attributes = attributes(&file.path, &file.sha256);
        if file.size < self.multipart_threshold {
            let mut bytes = Vec::with_capacity(file.size as usize);
            source.read_to_end(&mut bytes)?;
            check_unchanged(
                file,
                bytes.len() as u64,
                sha2::Sha256::digest(&bytes).as_slice(),
            )?;
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store
                .put_opts(&key, PutPayload::from(bytes), options)
                .await?;
            return Ok(());
        }
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self.store.put_multipart_opts(&key, options).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let streamed = async {
            let (mut hasher, mut size) = (sha2::Sha256::new(), 0u64);
            let mut buf = vec![0; self.part_size];
            loop {
                let n = source.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
                writer.wait_for_capacity(2).await?;
                writer.write(&buf[..n]);
            }
            check_unchanged(file, size, hasher.finalize().as_slice())
        }
        .await;
        match streamed {
            Ok(()) => writer.finish().await.map(drop).map_err(Into::into),
            Err(e) => {
                // An unfinished multipart upload holds storage until aborted.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Removes an object; one already gone is no error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        self.delete_all(&[rel.to_string()]).await
    }

    /// Removes objects in batches (S3's DeleteObjects, up to 1,000 a
    /// request); objects already gone are no error.
    pub async fn delete_all(&self, rels: &[String]) -> Result<()> {
        let keys = rels
            .iter()
            .map(|r| self.key(r))
            .collect::<Result<Vec<_>>>()?;
        let keys = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        let failures: Vec<object_store::Error> = self
            .store
            .delete_stream(keys)
            .filter_map(|result| async move {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => Some(e),
                }
            })
            .collect()
            .await;
        match failures.into_iter().next() {
            Some(e) => Err(e).with_context(|| format!("deleting objects under {}", self.target)),
            None => Ok(()),
        }
    }
}

/// The headers every object of the site carries.
fn attributes(rel: &str, sha256: &str) -> Attributes {
    Attributes::from_iter([
        (
            Attribute::CacheControl,
            AttributeValue::from(PathClass::of(rel).cache_control()),
        ),
        (
            Attribute::ContentType,
            AttributeValue::from(content_type(rel)),
        ),
        (
            Attribute::Metadata(SHA256_METADATA.into()),
            AttributeValue::from(sha256.to_string()),
        ),
    ])
}

fn check_unchanged(file: &LocalFile, size: u64, sha256: &[u8]) -> Result<()> {
    if size != file.size || hex::encode(sha256) != file.sha256 {
        bail!(
            "{} changed while it was being published (now {size} bytes, SHA-256 {}); publish again once the build is done",
            file.path,
            hex::encode(sha256)
        );
    }
    Ok(())
}
