use super::*;

const BASE: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Applies `patch` to [`BASE`] for a `target_len`-byte target: the bytes, or why it was refused.
fn apply(patch: &[u8], target_len: u64) -> Result<Vec<u8>, String> {
    let mut reader = Reader::new(patch, BASE, BASE.len() as u64, target_len).unwrap();
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => {
            assert_eq!(reader.failure(), Some(e.to_string().as_str()));
            Err(e.to_string())
        }
    }
}

fn written(ops: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), 3).unwrap();
    ops(&mut w);
    w.finish().unwrap()
}

/// The magic and raw operations, compressed, with no end mark added.
fn raw(ops: &[u8]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(ops);
    zstd::encode_all(&bytes[..], 3).unwrap()
}

fn op(tag: u8, fields: &[u64]) -> Vec<u8> {
    let mut bytes = vec![tag];
    for f in fields {
        bytes.extend_from_slice(&f.to_le_bytes());
    }
    bytes
}

#[test]
fn copies_and_literals_rebuild_the_target() {
    let patch = written(|w| {
        w.copy(10, 6).unwrap();
        w.data(b"--new--").unwrap();
        w.copy(0, 4).unwrap();
        w.copy(4, 6).unwrap();
        w.data(b"").unwrap();
    });
    assert_eq!(apply(&patch, 23).unwrap(), b"abcdef--new--0123456789");
    // Adjacent copies are one operation.
    let one = written(|w| w.copy(0, 10).unwrap());
    let two = written(|w| {
        w.copy(0, 4).unwrap();
        w.copy(4, 6).unwrap();
    });
    assert_eq!(one, two);
}

#[test]
fn reads_one_byte_at_a_time() {
    let patch = written(|w| {
        w.copy(30, 6).unwrap();
        w.data(b"xy").unwrap();
    });
    let mut reader = Reader::new(&patch[..], BASE, BASE.len() as u64, 8).unwrap();
    let mut out = Vec::new();
    let mut byte = [0; 1];
    while reader.read(&mut byte).unwrap() == 1 {
        out.push(byte[0]);
    }
    assert_eq!(out, b"uvwxyzxy");
}

#[test]
fn a_copy_outside_the_base_is_refused() {
    let beyond = written(|w| w.copy(30, 7).unwrap());
    let err = apply(&beyond, 7).unwrap_err();
    assert!(err.contains("out of range"), "{err}");
    let wraps = raw(&op(COPY, &[u64::MAX, 2]));
    assert!(apply(&wraps, 2).unwrap_err().contains("out of range"));
}

#[test]
fn more_or_fewer_bytes_than_the_signed_target_are_refused() {
    let long = written(|w| w.data(b"0123456789").unwrap());
    let err = apply(&long, 9).unwrap_err();
    assert!(err.contains("more than the signed 9-byte target"), "{err}");
    let huge = raw(&op(DATA, &[u64::MAX]));
    assert!(apply(&huge, 100).unwrap_err().contains("more than"));
    let huge_copy = written(|w| w.copy(0, u64::MAX).unwrap());
    assert!(apply(&huge_copy, 100).unwrap_err().contains("more than"));
    let short = written(|w| w.copy(0, 5).unwrap());
    let err = apply(&short, 6).unwrap_err();
    assert!(err.contains("1 bytes short"), "{err}");
}

#[test]
fn a_truncated_stream_is_refused() {
    let patch = written(|w| {
        w.copy(0, 4).unwrap();
        w.data(&[7; 100]).unwrap();
    });
    assert_eq!(apply(&patch, 104).unwrap().len(), 104);
    for cut in [patch.len() - 1, patch.len() / 2, 3] {
        let err = apply(&patch[..cut], 104).unwrap_err();
        assert!(!err.is_empty(), "cut at {cut}");
    }
    // Whole zstd frames, but the operations stop early.
    let no_end = raw(&op(COPY, &[0, 4]));
    assert!(apply(&no_end, 4).unwrap_err().contains("truncated"));
    let mid_op = raw(&op(COPY, &[0])[..5]);
    assert!(apply(&mid_op, 4).unwrap_err().contains("truncated"));
    let mut short_data = op(DATA, &[10]);
    short_data.extend_from_slice(b"abc");
    assert!(
        apply(&raw(&short_data), 10)
            .unwrap_err()
            .contains("truncated")
    );
}

#[test]
fn malformed_streams_are_refused() {
    let wrong_magic = zstd::encode_all(&b"MLLDCD9\nE"[..], 3).unwrap();
    assert!(apply(&wrong_magic, 0).unwrap_err().contains("magic"));
    let unknown = raw(b"X");
    assert!(
        apply(&unknown, 0)
            .unwrap_err()
            .contains("unknown operation")
    );
    let empty = raw(&op(COPY, &[0, 0]));
    assert!(apply(&empty, 1).unwrap_err().contains("empty operation"));
    let trailing = raw(b"Ejunk");
    assert!(apply(&trailing, 0).unwrap_err().contains("after its end"));
    assert!(apply(b"not zstd at all", 0).is_err());
}
