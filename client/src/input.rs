//! Reading the project's and the user's own files (lock file, configs,
//! statistics, keys): regular files only (a FIFO planted in their place
//! would hang every command), size-capped, and text that is not UTF-8 is
//! an error naming the line and column of the first invalid byte.

use std::path::Path;

use anyhow::{Result, bail};

/// Any of these files larger than this is refused rather than read.
pub const MAX_INPUT: u64 = 64 << 20;

/// The text of `path`, `None` when it does not exist.
pub fn read_text(path: &Path) -> Result<Option<String>> {
    let bytes = match mlld_fsutil::read_regular(path, MAX_INPUT) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("reading {}: {e}", path.display()),
    };
    match mlld_schemas::locate::utf8_text(&bytes) {
        Ok(_) => Ok(Some(String::from_utf8(bytes).unwrap_or_default())),
        Err((line, column, offset)) => bail!(
            "{}:{line}:{column}: the file is not UTF-8 text (invalid byte 0x{:02x} at byte offset {offset}); fix or restore the file",
            path.display(),
            bytes[offset]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_its_position_and_absent_files_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mlld.lock.json");
        std::fs::write(&f, b"{\n  \"version\": \"1\xff\"\n}\n").unwrap();
        let err = read_text(&f).unwrap_err().to_string();
        assert!(err.contains("mlld.lock.json:2:16:"), "{err}");
        assert!(err.contains("0xff"), "{err}");
        assert!(read_text(&dir.path().join("none")).unwrap().is_none());
    }
}
