//! Approval of changed content for a module the project has locked already
//! (`update`, or a source pin that moves a locked entry). Without a
//! terminal the refusal says what changes, not "for the first time".

use std::io::IsTerminal;

use anyhow::{Result, bail};

/// Like [`crate::approve::approve`]; `change` says what moves, e.g.
/// "moving mlld://a/b from revision 996153b to b20e54d changes its content".
pub fn approve_change(description: &str, name: &str, yes: bool, change: &str) -> Result<()> {
    if !yes && !std::io::stdin().is_terminal() {
        bail!(
            "{change}, which needs approval, and there is no terminal to ask on; review the change (`mlld-registry info {name}` shows the module; the same command on a terminal shows the diff before asking) and run again with --yes"
        );
    }
    crate::approve::approve(description, name, yes)
}
