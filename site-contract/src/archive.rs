//! The one reader of the site's tar archives (snapshots, index-only
//! snapshots, delta blob packs), with the one set of member rules: a member
//! is a regular file with a plain, relative UTF-8 path. Links, devices,
//! absolute paths and `..` are refused, so nothing unpacked from an archive
//! can land outside the directory it is unpacked into.

use std::io::Read;
use std::path::Component;

use anyhow::{Context, Result, bail};

/// A tar stream compressed with zstd, as every site archive is.
pub type ZstdTar<R> = tar::Archive<zstd::Decoder<'static, std::io::BufReader<R>>>;

/// Opens the zstd-compressed tar stream `reader`. Callers that read
/// untrusted bytes wrap `reader` in a cap first.
pub fn open_zstd<R: Read>(reader: R) -> Result<ZstdTar<R>> {
    Ok(tar::Archive::new(
        zstd::Decoder::new(reader).context("the archive is not zstd-compressed")?,
    ))
}

/// The member's path, refusing anything but a plain relative file path.
pub fn member_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String> {
    let kind = entry.header().entry_type();
    let path = entry
        .path()
        .context("a member's path is not valid")?
        .into_owned();
    if kind != tar::EntryType::Regular {
        bail!(
            "member `{}` is a {kind:?}, not a regular file: links and devices are refused",
            path.display()
        );
    }
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!(
            "member path `{}` is absolute or leaves the archive (`..`); refused",
            path.display()
        );
    }
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("member path `{}` is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn first_member_path(bytes: &[u8]) -> Result<String> {
        let mut archive = open_zstd(bytes)?;
        let entry = archive.entries()?.next().context("empty")??;
        member_path(&entry)
    }

    #[test]
    fn plain_files_pass_and_links_and_escapes_are_refused() {
        let good = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "blobs/sha256/ab/cd", &b"hi"[..])
                .unwrap();
        });
        assert_eq!(first_member_path(&good).unwrap(), "blobs/sha256/ab/cd");

        let link = archive(|b| {
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "manifest.json", "/etc/passwd")
                .unwrap();
        });
        let err = first_member_path(&link).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");

        // `tar::Builder` refuses to write `..`, so the name is set raw.
        let escape = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            h.as_gnu_mut().unwrap().name[..8].copy_from_slice(b"../evil\0");
            h.set_cksum();
            b.append(&h, &b"hi"[..]).unwrap();
        });
        let err = first_member_path(&escape).unwrap_err();
        assert!(format!("{err:#}").contains("leaves the archive"), "{err:#}");
    }

    #[test]
    fn bytes_that_are_not_zstd_are_an_error() {
        let mut archive = open_zstd(&b"not zstd at all"[..]).unwrap();
        assert!(archive.entries().unwrap().next().unwrap().is_err());
    }
}
