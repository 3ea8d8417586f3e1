//! Which preopened directory a path lies under: wasi-libc's rule, as a pure function.
//!
//! The component resolves model paths against the preopens of the *running* host (see the
//! guest's `files` module for why it cannot use wasi-libc's table). It must pick the directory
//! wasi-libc would, so a path means the same thing to it as to every other WASI program:
//! leading `/`, `./` and `.` are stripped from both the path and each preopen name (so `/`, `.`
//! and `""` all name the root of the guest's view), trailing slashes of a preopen are ignored,
//! a preopen matches when its components are a prefix of the path's, and the longest match wins
//! (the later preopen on a tie, as wasi-libc scans from the last one registered).

/// `path` split into (index of the preopen in `preopens`, path relative to it). The relative
/// path is `"."` when `path` names the preopened directory itself. `None` when no preopen
/// holds `path`.
pub fn resolve<'p, S: AsRef<str>>(preopens: &[S], path: &'p str) -> Option<(usize, &'p str)> {
    let path = strip_prefixes(path);
    let mut best: Option<(usize, usize)> = None;
    for (index, name) in preopens.iter().enumerate().rev() {
        let prefix = strip_prefixes(name.as_ref()).trim_end_matches('/');
        let matches = prefix.is_empty()
            || (path.starts_with(prefix)
                && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')));
        if matches && best.is_none_or(|(_, len)| prefix.len() > len) {
            best = Some((index, prefix.len()));
        }
    }
    best.map(|(index, len)| {
        let rest = path[len..].trim_start_matches('/');
        (index, if rest.is_empty() { "." } else { rest })
    })
}

/// wasi-libc's `strip_prefixes`: leading `/`, `./` and a lone `.`.
fn strip_prefixes(mut path: &str) -> &str {
    loop {
        if let Some(rest) = path.strip_prefix('/').or_else(|| path.strip_prefix("./")) {
            path = rest;
        } else if path == "." {
            return "";
        } else {
            return path;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn a_models_mount_and_a_root_mount_resolve_the_same_path() {
        let path = "/models/bearing-lstm-int8/model.onnx";
        assert_eq!(
            resolve(&["/models"], path),
            Some((0, "bearing-lstm-int8/model.onnx"))
        );
        // Spin's default strategy: one staging directory, preopened at `/`, models/ inside.
        assert_eq!(
            resolve(&["/"], path),
            Some((0, "models/bearing-lstm-int8/model.onnx"))
        );
        assert_eq!(
            resolve(&["."], path),
            Some((0, "models/bearing-lstm-int8/model.onnx"))
        );
    }

    #[test]
    fn the_longest_prefix_wins_whatever_the_order() {
        let path = "/models/m/model.json";
        assert_eq!(resolve(&["/", "/models"], path), Some((1, "m/model.json")));
        assert_eq!(resolve(&["/models", "/"], path), Some((0, "m/model.json")));
        assert_eq!(
            resolve(&["/data", "/models/", "/tmp"], path),
            Some((1, "m/model.json"))
        );
        // Equal length: the later preopen, as wasi-libc scans from the last one.
        assert_eq!(
            resolve(&["/models", "models"], path),
            Some((1, "m/model.json"))
        );
    }

    #[test]
    fn a_prefix_matches_whole_components_only() {
        assert_eq!(resolve(&["/model"], "/models/m/model.onnx"), None);
        assert_eq!(resolve(&["/data", "/model"], "/models/x"), None);
        assert_eq!(resolve(&["/models"], "/models"), Some((0, ".")));
        assert_eq!(resolve(&["/models"], "/models/"), Some((0, ".")));
        assert_eq!(resolve(&["./models"], "models/a"), Some((0, "a")));
        let none: [&str; 0] = [];
        assert_eq!(resolve(&none, "/models/a"), None);
    }
}
