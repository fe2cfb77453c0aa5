//! Site shard files: JSON of [`SiteShard`], compressed with zstd.

use std::collections::BTreeMap;
use std::io::Write as _;

use mlld_schemas::shard::Shard;
use mlld_schemas::sparse::{MAX_SHARD_JSON_BYTES, SPARSE_FORMAT, SiteShard};
use mlld_schemas::{AdvisoryRecord, RejectedRecord, VersionedModule};

/// zstd level of shard files. A nightly build at 1% changed rewrites most
/// shards (10,000 changes fall on 70% of a million modules' 8,192 shards);
/// on shard JSON level 3 is ten times faster than 12 and 1.8% larger
/// (19,858 against 19,505 bytes for an 84 KB shard, `zstd -b1 -e12`).
pub const SHARD_ZSTD_LEVEL: i32 = 3;

/// The compressed bytes of one shard file, reproducibly. (The indexer
/// keeps a previous build's file for unchanged JSON, so a shard's digest
/// can also come from the zstd of an earlier build.)
pub fn encode_shard(shard: &SiteShard) -> std::io::Result<Vec<u8>> {
    compress_shard_json(&shard_json(shard)?)
}

/// A shard file's JSON, before compression: equal JSON, equal file.
pub fn shard_json(shard: &SiteShard) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(shard).map_err(std::io::Error::other)
}

/// A shard's records as parts, for [`composed_shard_json`].
#[derive(Default)]
pub struct ShardParts<'a> {
    /// Each gist module's record spelled as serde_json writes a
    /// `ModuleRecord` (compact), in manifest order.
    pub modules: Vec<&'a [u8]>,
    pub versioned: Vec<&'a VersionedModule>,
    pub advisories: Vec<&'a AdvisoryRecord>,
    pub rejected: Vec<&'a RejectedRecord>,
    /// Shard key → the `user/module` names depending on it, sorted.
    pub dependents: BTreeMap<String, Vec<String>>,
}

/// The JSON [`shard_json`] gives for the shard of these parts, byte for
/// byte, composed from the records as spelled: an indexer writing
/// thousands of shards a night does not decode and re-encode every record.
pub fn composed_shard_json(
    shard: u32,
    shard_bits: u32,
    parts: &ShardParts,
) -> std::io::Result<Vec<u8>> {
    let size: usize = parts.modules.iter().map(|m| m.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    write!(
        out,
        r#"{{"formatVersion":{SPARSE_FORMAT},"shard":{shard},"shardBits":{shard_bits},"records":{{"#
    )?;
    // Shard's fields in declaration order, each left out when empty.
    let mut fields = 0;
    let mut field = |out: &mut Vec<u8>, name: &str| {
        if fields > 0 {
            out.push(b',');
        }
        fields += 1;
        write!(out, "\"{name}\":")
    };
    if !parts.modules.is_empty() {
        field(&mut out, "modules")?;
        out.push(b'[');
        for (i, record) in parts.modules.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(record);
        }
        out.push(b']');
    }
    let json = std::io::Error::other;
    if !parts.versioned.is_empty() {
        field(&mut out, "versioned")?;
        serde_json::to_writer(&mut out, &parts.versioned).map_err(json)?;
    }
    if !parts.advisories.is_empty() {
        field(&mut out, "advisories")?;
        serde_json::to_writer(&mut out, &parts.advisories).map_err(json)?;
    }
    if !parts.rejected.is_empty() {
        field(&mut out, "rejected")?;
        serde_json::to_writer(&mut out, &parts.rejected).map_err(json)?;
    }
    if !parts.dependents.is_empty() {
        field(&mut out, "dependents")?;
        serde_json::to_writer(&mut out, &parts.dependents).map_err(json)?;
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

/// The file of a shard's JSON ([`shard_json`]).
pub fn compress_shard_json(json: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(json, SHARD_ZSTD_LEVEL)
}

/// A shard file's JSON; refused when it is not zstd or decompresses past
/// the cap.
pub fn shard_json_of(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| e.to_string())?;
    let mut json = Vec::new();
    decoder
        .take(MAX_SHARD_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not a zstd shard: {e}"))?;
    if json.len() as u64 > MAX_SHARD_JSON_BYTES {
        return Err(format!("it decompresses past {MAX_SHARD_JSON_BYTES} bytes"));
    }
    Ok(json)
}

/// A shard file's records, after its digest was checked by the caller;
/// refused when it decompresses past the cap or names another shard.
pub fn decode_shard(bytes: &[u8], shard: u32, bits: u32) -> Result<Shard, String> {
    let json = shard_json_of(bytes)?;
    let file: SiteShard =
        serde_json::from_slice(&json).map_err(|e| format!("malformed shard: {e}"))?;
    if file.format_version != SPARSE_FORMAT {
        return Err(format!("shard format {}", file.format_version));
    }
    if file.shard != shard || file.shard_bits != bits {
        return Err(format!(
            "it is shard {} of {} bits, not shard {shard} of {bits}",
            file.shard, file.shard_bits
        ));
    }
    Ok(file.records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::shard::Shard;

    #[test]
    fn a_shard_decodes_only_as_itself() {
        let file = SiteShard {
            format_version: SPARSE_FORMAT,
            shard: 3,
            shard_bits: 4,
            records: Shard::default(),
        };
        let bytes = encode_shard(&file).unwrap();
        assert_eq!(encode_shard(&file).unwrap(), bytes, "reproducible");
        assert!(decode_shard(&bytes, 3, 4).is_ok());
        let err = decode_shard(&bytes, 2, 4).unwrap_err();
        assert!(err.contains("not shard 2"), "{err}");
        assert!(decode_shard(&bytes, 3, 5).is_err());
        assert!(decode_shard(b"garbage", 3, 4).is_err());
    }

    #[test]
    fn a_composed_shard_is_the_serialised_one_byte_for_byte() {
        let module = |name: &str| {
            serde_json::json!({
                "user": "u", "name": name, "gist": "g", "description": "d \"q\" é", "tags": ["t"],
                "revision": "r", "file": "m.mld", "size": 1, "integrity": "sha256:00",
                "files": [], "dependencies": ["v/x"]
            })
        };
        let records: Shard = serde_json::from_value(serde_json::json!({
            "modules": [module("a"), module("b")],
            "versioned": [{ "author": "alice", "name": "kit", "versions": [], "tags": {} }],
            "advisories": [{ "user": "u", "id": "1", "created": "2024-01-01T00:00:00Z",
                "severity": "high", "affects": ["a"], "gists": [], "type": "rce",
                "description": "d", "recommendation": "r" }],
            "rejected": [{ "module": "u/gone", "reason": "no module file" }],
            "dependents": { "u/a": ["v/x", "w/y"], "u/b": ["v/x"] }
        }))
        .unwrap();
        let lines: Vec<Vec<u8>> = (records.modules.iter())
            .map(|m| serde_json::to_vec(m).unwrap())
            .collect();
        let full = ShardParts {
            modules: lines.iter().map(Vec::as_slice).collect(),
            versioned: records.versioned.iter().collect(),
            advisories: records.advisories.iter().collect(),
            rejected: records.rejected.iter().collect(),
            dependents: records.dependents.clone(),
        };
        let some = ShardParts {
            modules: full.modules[1..].to_vec(),
            dependents: records.dependents.clone(),
            ..ShardParts::default()
        };
        let only_rejected = ShardParts {
            rejected: full.rejected.clone(),
            ..ShardParts::default()
        };
        let cases = [
            (full, records.clone()),
            (
                some,
                Shard {
                    modules: records.modules[1..].to_vec(),
                    dependents: records.dependents.clone(),
                    ..Shard::default()
                },
            ),
            (
                only_rejected,
                Shard {
                    rejected: records.rejected.clone(),
                    ..Shard::default()
                },
            ),
            (ShardParts::default(), Shard::default()),
        ];
        for (parts, records) in cases {
            let file = SiteShard {
                format_version: SPARSE_FORMAT,
                shard: 9,
                shard_bits: 5,
                records,
            };
            let composed = composed_shard_json(9, 5, &parts).unwrap();
            assert_eq!(
                String::from_utf8(composed).unwrap(),
                String::from_utf8(shard_json(&file).unwrap()).unwrap()
            );
        }
    }
}
