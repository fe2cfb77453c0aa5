use super::*;
use mlld_schemas::{AdvisoryRecord, ModuleRecord, VersionedModule};

fn module(user: &str, name: &str, gist: &str, deps: &[String]) -> ModuleRecord {
    serde_json::from_value(serde_json::json!({
        "user": user, "name": name, "gist": gist, "description": "", "tags": [],
        "revision": "a".repeat(40), "file": "m.mld", "integrity": "sha256:00", "size": 1,
        "files": [], "dependencies": deps
    }))
    .unwrap()
}

fn advisory(user: &str, id: &str, affects: &[&str], gists: &[&str]) -> AdvisoryRecord {
    serde_json::from_value(serde_json::json!({
        "user": user, "id": id, "created": "2024-01-01T00:00:00Z", "severity": "high",
        "affects": affects, "gists": gists, "type": "rce", "description": "d",
        "recommendation": "r"
    }))
    .unwrap()
}

/// 300 modules (each importing up to two earlier ones), a versioned module
/// sharing a gist module's name, advisories by name, by gist and for the
/// versioned module, a rejected module, and a dependency on a module the
/// registry does not have.
fn registry() -> (Vec<ModuleRecord>, Vec<VersionedModule>, Vec<AdvisoryRecord>) {
    let mut modules: Vec<ModuleRecord> = (0..300)
        .map(|i| {
            let deps: Vec<String> = [i / 2, i / 3]
                .into_iter()
                .filter(|&d| d < i)
                .map(|d| format!("u{}/m{d}", d % 7))
                .collect();
            module(
                &format!("u{}", i % 7),
                &format!("m{i}"),
                &format!("g{i}"),
                &deps,
            )
        })
        .collect();
    modules[5].current.dependencies.push("ghost/gone".into());
    let versioned: Vec<VersionedModule> = serde_json::from_value(serde_json::json!([
        { "author": "U3", "name": "m3", "versions": [] }
    ]))
    .unwrap();
    let advisories = vec![
        advisory("u1", "by-name", &["m1", "m8"], &[]),
        advisory("zed", "by-gist", &[], &["g2", "g250"]),
        advisory("u3", "versioned", &["m3"], &[]),
        advisory("u4", "nobody", &["absent"], &[]),
    ];
    (modules, versioned, advisories)
}

fn written(bits: u32) -> (tempfile::TempDir, PathBuf, Vec<Shard>) {
    let (modules, versioned, advisories) = registry();
    let rejected: Vec<mlld_schemas::RejectedRecord> = serde_json::from_value(serde_json::json!([
        { "module": "u6/bad", "reason": "no module file" }
    ]))
    .unwrap();
    let shards = shard::split(modules, versioned, &advisories, rejected, bits);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(RECORDS_NAME);
    write(&path, bits, &shards).unwrap();
    (dir, path, shards)
}

#[test]
fn each_name_reads_what_its_shard_says_about_it() {
    for bits in [0, 2, 5] {
        let (_dir, path, shards) = written(bits);
        let records = Records::open(&path).unwrap();
        assert_eq!(records.bits(), bits);
        let (modules, _, _) = registry();
        for m in &modules {
            let shard =
                &shards[shard::shard_of(&shard::shard_key(&m.user, &m.name), bits) as usize];
            let r = records
                .get(&m.user.to_uppercase(), &m.name)
                .unwrap()
                .unwrap();
            assert_eq!(r.module(&m.user, &m.name), Some(m));
            assert_eq!(r.modules.len(), 1, "only the records of {}", m.name);
            assert_eq!(
                r.dependents(&m.user, &m.name),
                shard.dependents(&m.user, &m.name)
            );
            let affecting = |s: &Shard| -> Vec<AdvisoryRecord> {
                s.advisories
                    .iter()
                    .filter(|a| a.affects(m))
                    .cloned()
                    .collect()
            };
            assert_eq!(affecting(r), affecting(shard));
            assert_eq!(r.advisories, affecting(shard), "no other name's advisories");
        }
        let m3 = records.get("u3", "m3").unwrap().unwrap();
        assert_eq!(m3.versioned("u3", "m3").unwrap().author, "U3");
        let ids: Vec<&str> = m3
            .advisories
            .iter()
            .map(|a| a.advisory.id.as_str())
            .collect();
        assert_eq!(ids, ["versioned"]);
        let m2 = records.get("u2", "m2").unwrap().unwrap();
        assert_eq!(m2.advisories[0].advisory.id, "by-gist");
        assert!(!m2.dependents("u2", "m2").is_empty());
        let ghost = records.get("ghost", "gone").unwrap().unwrap();
        assert_eq!(ghost.dependents("ghost", "gone"), ["u5/m5"]);
        assert!(ghost.modules.is_empty());
        assert_eq!(records.get("u6", "bad").unwrap().unwrap().rejected.len(), 1);
        assert!(records.get("u4", "absent").unwrap().is_none());
        assert!(records.get("nobody", "m1").unwrap().is_none());
    }
}

/// The place of `user/name`'s directory entry and of its record.
fn places(path: &Path, user: &str, name: &str) -> (usize, usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let bits = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let n = shard::shard_of(&shard::shard_key(user, name), bits) as usize;
    let at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
    let (dir, count) = (at(16 + 16 * n), at(24 + 16 * n));
    let key = key_digest(user, name);
    let entry = (0..count)
        .map(|i| dir + 32 + i * DIR_ENTRY)
        .find(|&e| bytes[e..e + 32] == key)
        .unwrap();
    (entry, at(entry + 32), at(entry + 40))
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_altered_record_is_refused_and_no_other() {
    let (_dir, path, _) = written(3);
    let (_, offset, length) = places(&path, "u1", "m1");
    flip(&path, offset + length / 2);
    let records = Records::open(&path).unwrap();
    let err = records.get("u1", "m1").unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(records.get("u2", "m2").unwrap().is_some());
}

#[test]
fn an_altered_directory_is_refused_for_every_name_of_its_bucket() {
    let (_dir, path, _) = written(3);
    let (entry, _, _) = places(&path, "u1", "m1");
    // Its length: a damaged entry could point anywhere.
    flip(&path, entry + 40);
    let records = Records::open(&path).unwrap();
    let err = records.get("u1", "m1").unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    // A name the bucket does not list cannot be passed off as absent.
    let (modules, _, _) = registry();
    let bucket = |m: &ModuleRecord| shard::shard_of(&shard::shard_key(&m.user, &m.name), 3);
    let n = shard::shard_of(&shard::shard_key("u1", "m1"), 3);
    let absent = (0..)
        .map(|i| format!("absent{i}"))
        .find(|name| shard::shard_of(&shard::shard_key("u1", name), 3) == n)
        .unwrap();
    assert!(records.get("u1", &absent).is_err());
    let other = modules.iter().find(|m| bucket(m) != n).unwrap();
    assert!(records.get(&other.user, &other.name).unwrap().is_some());
}

#[test]
fn a_table_pointing_at_another_bucket_is_refused() {
    let (_dir, path, _) = written(3);
    let mut bytes = std::fs::read(&path).unwrap();
    // Bucket 0's table entry copied over bucket 1's: both directories are
    // intact, but bucket 0's does not check as bucket 1's.
    let zero = bytes[16..32].to_vec();
    bytes[32..48].copy_from_slice(&zero);
    std::fs::write(&path, bytes).unwrap();
    let records = Records::open(&path).unwrap();
    let in_bucket = |n: u32| {
        (0..)
            .map(|i| format!("m{i}"))
            .find(|name| shard::shard_of(&shard::shard_key("u0", name), 3) == n)
            .unwrap()
    };
    let err = records.get("u0", &in_bucket(1)).unwrap_err().to_string();
    assert!(err.contains("bucket 1 does not match its digest"), "{err}");
    assert!(records.get("u0", &in_bucket(0)).is_ok());
}

#[test]
fn a_truncated_or_foreign_file_is_refused() {
    let (_dir, path, _) = written(2);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let records = Records::open(&path).unwrap();
    let failures = (0..300)
        .filter(|i| {
            records
                .get(&format!("u{}", i % 7), &format!("m{i}"))
                .is_err()
        })
        .count();
    assert!(failures > 0, "the last records lie outside the file");
    std::fs::write(&path, b"MLLDSHD1\0\0\0\0\0\0\0\0").unwrap();
    let err = Records::open(&path).err().unwrap().to_string();
    assert!(err.contains("not a record table"), "{err}");
}

/// The streamed writer (what `sync` runs) gives every name the record that
/// splitting the whole manifest in memory gives it, below and above the
/// 256 spill groups' bit count. (Not the same bytes: it writes records as
/// the manifest spells them, in its field order.)
#[test]
fn the_streamed_records_hold_what_the_in_memory_split_holds() {
    for extra in [0usize, 20_000] {
        let (mut modules, versioned, advisories) = registry();
        modules.extend((0..extra).map(|i| {
            module(
                &format!("x{}", i % 97),
                &format!("n{i}"),
                &format!("h{i}"),
                &[format!("u{}/m{}", i % 7, i % 300)],
            )
        }));
        let rejected: Vec<mlld_schemas::RejectedRecord> =
            serde_json::from_value(serde_json::json!([
                { "module": "u6/bad", "reason": "no module file" },
                { "module": "@u3/m3", "version": "9.9.9", "reason": "hash mismatch" }
            ]))
            .unwrap();
        let manifest = serde_json::json!({
            "formatVersion": 1, "serial": 7, "created": "2026-01-01T00:00:00Z",
            "expires": "2026-02-01T00:00:00Z", "members": {"blobs/x": {"sha256": "00", "size": 1}},
            "modules": modules, "advisories": advisories, "versioned": versioned,
            "rejected": rejected, "somethingNewer": [1, 2, 3]
        });
        let bits = shard::bits_for(modules.len() + versioned.len());
        assert_eq!(bits >= 8, extra > 0, "both sides of the spill groups' bits");
        let dir = tempfile::tempdir().unwrap();
        let expected = dir.path().join("expected.bin");
        let shards = shard::split(modules.clone(), versioned, &advisories, rejected, bits);
        write(&expected, bits, &shards).unwrap();

        // Records are spilled as the manifest spells them: compact, or
        // pretty-printed with line breaks inside every record.
        let compact = serde_json::to_vec(&manifest).unwrap();
        let pretty = serde_json::to_vec_pretty(&manifest).unwrap();
        for bytes in [compact, pretty] {
            let streamed = dir.path().join("streamed.bin");
            let head = super::super::stream::write_records(
                &bytes[..],
                &streamed,
                &dir.path().join("spill"),
            )
            .unwrap();
            assert_eq!(
                (head.serial, head.modules, head.versioned, head.advisories),
                (7, modules.len(), 1, 4)
            );
            let (ours, theirs) = (
                Records::open(&streamed).unwrap(),
                Records::open(&expected).unwrap(),
            );
            let mut names: Vec<(String, String)> = modules
                .iter()
                .flat_map(|m| {
                    let deps = m
                        .current
                        .dependencies
                        .iter()
                        .filter_map(|d| d.split_once('/'));
                    std::iter::once((m.user.clone(), m.name.clone()))
                        .chain(deps.map(|(u, n)| (u.to_string(), n.to_string())))
                })
                .collect();
            names.extend(
                [("u3", "m3"), ("u6", "bad"), ("nobody", "none")]
                    .map(|(u, n)| (u.into(), n.into())),
            );
            for (user, name) in &names {
                assert_eq!(
                    ours.get(user, name).unwrap(),
                    theirs.get(user, name).unwrap(),
                    "{user}/{name} with {extra} extra modules"
                );
            }
            assert!(!dir.path().join("spill").exists(), "the spill is removed");
        }
    }
}

#[test]
fn a_manifest_that_breaks_off_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (modules, _, _) = registry();
    let bytes = serde_json::to_vec(&serde_json::json!({ "modules": modules })).unwrap();
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let out = dir.path().join("r.bin");
        assert!(
            super::super::stream::write_records(&bytes[..cut], &out, &dir.path().join("s"))
                .is_err(),
            "cut at {cut}"
        );
    }
}
