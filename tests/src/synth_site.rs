//! A synthetic registry indexed into a site with the demo key: the world
//! of the sync tests that need more modules than the examples have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlld_synth::{Synth, SynthConfig};

use crate::{build_from, build_time, demo_key};

pub struct SynthSite {
    pub synth: Synth,
    /// The registry checkout and recorded gists (`registry/`, `gists/`).
    pub data: PathBuf,
    pub site: PathBuf,
}

impl SynthSite {
    /// Writes the registry under `dir/data` and builds `dir/site`.
    pub fn new(dir: &Path, config: SynthConfig) -> Self {
        let synth = Synth::new(config);
        let data = dir.join("data");
        synth.write(&data, &BTreeMap::new()).unwrap();
        let out = Self {
            synth,
            data,
            site: dir.join("site"),
        };
        out.rebuild();
        out
    }

    /// Moves these modules to the given generations and rebuilds the site.
    pub fn change(&self, changed: &BTreeMap<usize, u32>) {
        self.synth.write(&self.data, changed).unwrap();
        self.rebuild();
    }

    /// Builds the site again from the registry as it is now.
    pub fn rebuild(&self) {
        build_from(
            &self.site,
            None,
            build_time(),
            demo_key(),
            &self.data.join("registry"),
            &self.data.join("gists"),
        );
    }
}
