//! The members' JSON object, written straight from the digests.

use mlld_schemas::snapshot::{BLOB_PREFIX, Member};

use super::Members;

impl Members {
    /// Writes the members as the JSON object `serde_json::to_writer` would
    /// (the manifest's `members`): a blob's path and digest are lowercase
    /// hex, so its entry is written straight from the digest's bytes
    /// instead of through two made strings and serde's escaping (over a
    /// million entries at 1,000,000 modules, on the manifest's one thread).
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(b"{")?;
        let mut others = self.others.iter().peekable();
        let mut first = true;
        let mut comma = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
            if !std::mem::take(&mut first) {
                out.write_all(b",")?;
            }
            Ok(())
        };
        let mut entry = [0u8; BLOB_ENTRY_MAX];
        for (digest, size) in &self.blobs {
            let len = blob_entry(digest, *size, &mut entry);
            let path = &entry[1..1 + BLOB_PATH_LEN];
            while let Some((p, m)) = others.next_if(|(p, _)| p.as_bytes() < path) {
                comma(out)?;
                write_other(out, p, m)?;
            }
            comma(out)?;
            out.write_all(&entry[..len])?;
        }
        for (p, m) in others {
            comma(out)?;
            write_other(out, p, m)?;
        }
        out.write_all(b"}")
    }
}

/// [`BLOB_PREFIX`] and 64 hex digits split after the first two.
const BLOB_PATH_LEN: usize = BLOB_PREFIX.len() + 2 + 1 + 62;
/// `"path":{"sha256":"hex","size":N}`, N at most 20 digits.
const BLOB_ENTRY_MAX: usize = 1 + BLOB_PATH_LEN + 13 + 64 + 9 + 20 + 1;

/// A blob's entry in the members object into `out`; returns its length.
fn blob_entry(digest: &[u8; 32], size: u64, out: &mut [u8; BLOB_ENTRY_MAX]) -> usize {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).expect("64 hex digits for 32 bytes");
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        out[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(b"\"");
    put(BLOB_PREFIX.as_bytes());
    put(&hex[..2]);
    put(b"/");
    put(&hex[2..]);
    put(b"\":{\"sha256\":\"");
    put(&hex);
    put(b"\",\"size\":");
    put(itoa::Buffer::new().format(size).as_bytes());
    put(b"}");
    n
}

fn write_other(out: &mut dyn std::io::Write, path: &str, member: &Member) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, path)?;
    out.write_all(b":")?;
    serde_json::to_writer(&mut *out, member)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlld_schemas::snapshot::blob_path;

    use super::*;
    use crate::members::MembersBuilder;

    fn sha(i: u8) -> String {
        mlld_schemas::sha256_hex(&[i])
    }

    #[test]
    fn the_direct_json_writer_writes_what_serde_writes() {
        let mut b = MembersBuilder::default();
        for i in 0..60u8 {
            b.add_blob(&sha(i), u64::from(i) * 1_000_003);
        }
        b.add_blob(&sha(61), u64::MAX);
        let other = |sha256: String| Member { sha256, size: 7 };
        // Others before, among and after the blobs, one on a blob's own
        // path naming another digest, and one needing escapes.
        let odd = blob_path(&sha(5));
        for path in [
            "a",
            "blobs/sha256/7",
            "blobs/sha256/f",
            "index/meta.json",
            "z\"\u{1}é",
            &odd,
        ] {
            b.add(path.to_string(), other(sha(200)));
        }
        b.add(blob_path(&sha(9)), other("not hex".into()));
        for members in [b.finish(), Members::default()] {
            let mut direct = Vec::new();
            members.write_json(&mut direct).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(&members).unwrap()
            );
        }
    }
}
