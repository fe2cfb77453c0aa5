//! Site shard files: JSON of [`SiteShard`], compressed with zstd.

use mlld_schemas::shard::Shard;
use mlld_schemas::sparse::{MAX_SHARD_JSON_BYTES, SPARSE_FORMAT, SiteShard};

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
}
