//! Which file of a gist is the module.
//!
//! The rule: among the gist's files named `*.mld`, `*.mlld`, `*.mld.md` or
//! `*.mlld.md`, take the one whose name without extension equals the module
//! name; if none does, take the first by extension rank (`.mld`, `.mlld`,
//! `.mld.md`, `.mlld.md`) and then by file name in byte order. A gist with
//! none of these files has no module.

const EXTENSIONS: [&str; 4] = [".mld", ".mlld", ".mld.md", ".mlld.md"];

fn split(file_name: &str) -> Option<(&str, usize)> {
    // Longest extension first, so `a.mld.md` is `.mld.md`, not `.md`.
    let mut by_len: Vec<(usize, &str)> = EXTENSIONS.iter().copied().enumerate().collect();
    by_len.sort_by_key(|(_, ext)| std::cmp::Reverse(ext.len()));
    by_len.into_iter().find_map(|(rank, ext)| {
        file_name
            .strip_suffix(ext)
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, rank))
    })
}

/// Picks the module file among `file_names` for the module `module`.
pub fn select<'a>(module: &str, file_names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    file_names
        .into_iter()
        .filter_map(|name| split(name).map(|(stem, rank)| (stem != module, rank, name)))
        .min()
        .map(|(_, _, name)| name)
}

#[cfg(test)]
mod tests {
    use super::select;

    #[test]
    fn prefers_the_file_named_like_the_module() {
        assert_eq!(
            select(
                "prompt-kit",
                ["examples.mld", "README.md", "prompt-kit.mld"]
            ),
            Some("prompt-kit.mld")
        );
        assert_eq!(select("kit", ["kit.mld.md", "a.mld"]), Some("kit.mld.md"));
    }

    #[test]
    fn falls_back_to_extension_rank_then_name() {
        assert_eq!(select("x", ["b.mld", "a.mlld", "c.mld"]), Some("b.mld"));
        assert_eq!(select("x", ["doc.mld.md", "z.mlld"]), Some("z.mlld"));
        assert_eq!(select("x", ["notes.txt", "README.md", ".mld"]), None);
    }
}
