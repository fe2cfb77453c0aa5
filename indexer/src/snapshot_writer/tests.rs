//! The snapshot writer's frames and head frame.
use super::*;

fn members(n: usize) -> BTreeMap<String, Member> {
    (0..n)
        .map(|i| {
            let sha = mlld_schemas::sha256_hex(format!("blob {i}").as_bytes());
            (
                mlld_schemas::snapshot::blob_path(&sha),
                Member {
                    sha256: sha,
                    size: 6,
                },
            )
        })
        .collect()
}

#[test]
fn the_streamed_head_frame_holds_the_manifest_and_signature_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    // Several zstd blocks' worth, with repeats to match.
    let manifest: Vec<u8> = (0..400_000u32)
        .flat_map(|i| format!("{{\"n\":{},\"s\":\"{}\"}}", i % 977, i * 31).into_bytes())
        .collect();
    let signature = b"untrusted comment: x\nRWQ\ntrusted comment: y\nZZ\n";
    std::fs::write(dir.path().join("m.json"), &manifest).unwrap();
    let head = |name: &str| {
        let dest = dir.path().join(name);
        head_frame(&dir.path().join("m.json"), signature, 1_700_000_000, &dest).unwrap();
        std::fs::read(dest).unwrap()
    };
    let (first, second) = (head("a.zst"), head("b.zst"));
    assert!(first == second, "the same manifest gave two head frames");
    // The tar the in-memory writer made: manifest, padding, signature.
    let mut tar = Vec::new();
    entry(&mut tar, MANIFEST_NAME, &manifest, 1_700_000_000).unwrap();
    entry(&mut tar, MANIFEST_SIG_NAME, signature, 1_700_000_000).unwrap();
    assert!(zstd::decode_all(&first[..]).unwrap() == tar);
    let size = zstd::zstd_safe::get_frame_content_size(&first).unwrap();
    assert_eq!(
        size,
        Some(tar.len() as u64),
        "one frame, its size in the header"
    );
    assert_eq!(
        zstd::zstd_safe::find_frame_compressed_size(&first),
        Ok(first.len())
    );
}

#[test]
fn frame_boundaries_depend_only_on_neighbouring_blobs() {
    let all = members(2000);
    let frames: Vec<Frame> = super::frames(all.clone().into_iter()).collect();
    assert!(
        frames.len() > 60 && frames.len() < 250,
        "{} frames",
        frames.len()
    );
    assert!(frames.iter().all(|f| f.len() <= MAX_FRAME_BLOBS));
    // Boundaries spread over the whole order (members sort by digest):
    // frames are small, and few are cut by the cap or hold one blob.
    let capped = frames.iter().filter(|f| f.len() == MAX_FRAME_BLOBS).count();
    let single = frames.iter().filter(|f| f.len() == 1).count();
    assert!(
        capped * 20 < frames.len(),
        "{capped} of {} frames capped",
        frames.len()
    );
    assert!(
        single * 5 < frames.len(),
        "{single} of {} frames hold one blob",
        frames.len()
    );
    // Adding blobs leaves most frames as they were.
    let mut more = all.clone();
    more.extend(members(2020).into_iter().skip(2000));
    let before: std::collections::BTreeSet<_> = frames.iter().map(|f| frame_id(f)).collect();
    let after: Vec<_> = super::frames(more.into_iter())
        .map(|f| frame_id(&f))
        .collect();
    let kept = after.iter().filter(|id| before.contains(*id)).count();
    assert!(
        kept * 10 >= after.len() * 8,
        "{kept} of {} frames kept",
        after.len()
    );
}
