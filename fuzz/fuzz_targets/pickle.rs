//! The restricted unpickler, alone (bare pickles) and as torch uses it (persistent ids allowed),
//! then what the readers do with its result: select, flatten, describe as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{pickle, structure};

fuzz_target!(|data: &[u8]| {
    for storages in [false, true] {
        let Ok(p) = pickle::parse(data, storages) else { continue };
        let _ = structure::to_json(&p, p.root, 1 << 16);
        let _ = structure::flatten(&p, p.root, "root");
        if let Ok(id) = structure::select(&p, p.root, "0.0") {
            let _ = structure::flatten(&p, id, "0.0");
        }
    }
});
