//! From an unpickled object graph to named tensors plus JSON metadata, and path selectors.
//!
//! Tensors are named by their path: dict keys and list/tuple indices joined by `.`, so the
//! tensor of a ComfyUI conditioning `[[tensor, {"pooled_output": None}]]` is `0.0`. Each largest
//! subtree that holds no tensor becomes one metadata entry of JSON under its path (`0.1` =
//! `{"pooled_output": null}`), and `__structure__` holds the whole shape with tensors shown as
//! `{"tensor": "F32[1, 77, 768]"}`. A selector (`0.1`, `model.diffusion_model`) picks a subtree
//! first; names are then relative to it.
//!
//! Every walk here is iterative, and a first pass bounds what the later ones may do: it refuses
//! cycles, nesting past [`MAX_PICKLE_DEPTH`] and graphs whose shared references would expand to
//! more than [`MAX_STRUCTURE_NODES`] nodes or [`MAX_STRUCTURE_TEXT`] bytes of text. Names are
//! bounded separately ([`MAX_NAME_BYTES`]): a path repeats every key above it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::limits::{
    MAX_METADATA_JSON, MAX_NAME_BYTES, MAX_PICKLE_DEPTH, MAX_STRUCTURE_JSON, MAX_STRUCTURE_NODES, MAX_STRUCTURE_TEXT,
};
use crate::pickle::{Global, Id, Obj, Pickle, TensorRef, bigint_to_decimal};
use crate::{FormatError, Result, bail};

/// Metadata key of the JSON skeleton of the whole (selected) structure.
pub const STRUCTURE_KEY: &str = "__structure__";

/// The flattened result: tensors (still views into storages) in walk order, and metadata.
pub struct Flat<'p> {
    pub tensors: Vec<(String, &'p TensorRef)>,
    pub metadata: BTreeMap<String, String>,
}

/// Number of children of a container (dict keys and values both count).
fn child_count(obj: &Obj) -> usize {
    match obj {
        Obj::List(v) | Obj::Set(v) => v.len(),
        Obj::Tuple(v) => v.len(),
        Obj::Dict(d) => d.len() * 2,
        _ => 0,
    }
}

fn child(obj: &Obj, i: usize) -> Id {
    match obj {
        Obj::List(v) | Obj::Set(v) => v[i],
        Obj::Tuple(v) => v[i],
        Obj::Dict(d) => {
            let (k, v) = d[i / 2];
            if i.is_multiple_of(2) { k } else { v }
        }
        _ => unreachable!("child of a scalar"),
    }
}

/// At least the bytes of JSON [`to_json`] writes for `obj` itself, children not included. The
/// text bound of [`analyse`] adds these up over the expanded graph; only their scale matters.
fn own_text(obj: &Obj) -> u64 {
    let n = match obj {
        Obj::None | Obj::Bool(_) => 5,
        Obj::Int(_) => 20,
        Obj::BigInt(b) => 3 * b.len() + 1,
        Obj::Float(_) => 24,
        Obj::Str(s) => json_str_len(s),
        // `b'...'` of the lossy UTF-8, Rust-escaped, then JSON-escaped: at most 7 bytes a byte.
        Obj::Bytes(b) => 7 * b.len() + 5,
        Obj::Global(_) => 48,
        Obj::Storage(s) => json_str_len(&s.key) + 48,
        Obj::Tensor(t) => 32 + 22 * t.shape.len(),
        // Brackets and a separator per child.
        container => 2 + 2 * child_count(container),
    };
    n as u64
}

/// Facts about every object reachable from a root, from one bounded pass.
struct Analysis {
    has_tensor: Vec<bool>,
}

fn analyse(p: &Pickle, root: Id) -> Result<Analysis> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let n = p.objs.len();
    let (mut state, mut height, mut size, mut text, mut has_tensor) =
        (vec![NEW; n], vec![0u16; n], vec![0u64; n], vec![0u64; n], vec![false; n]);
    let mut stack: Vec<(Id, usize)> = vec![(root, 0)];
    state[root as usize] = OPEN;
    while let Some(&mut (id, ref mut next)) = stack.last_mut() {
        let obj = p.get(id);
        if *next < child_count(obj) {
            let c = child(obj, *next);
            *next += 1;
            match state[c as usize] {
                NEW => {
                    if stack.len() >= MAX_PICKLE_DEPTH {
                        bail!("pickle structure nests deeper than {MAX_PICKLE_DEPTH} levels");
                    }
                    state[c as usize] = OPEN;
                    stack.push((c, 0));
                }
                OPEN => bail!("pickle structure contains itself (a recursive {})", p.get(c).kind()),
                _ => {
                    if stack.len() + height[c as usize] as usize > MAX_PICKLE_DEPTH {
                        bail!("pickle structure nests deeper than {MAX_PICKLE_DEPTH} levels");
                    }
                }
            }
            continue;
        }
        stack.pop();
        let (mut h, mut s, mut x, mut t) = (0u16, 1u64, own_text(obj), matches!(obj, Obj::Tensor(_)));
        for i in 0..child_count(obj) {
            let c = child(obj, i) as usize;
            h = h.max(height[c]);
            s = s.saturating_add(size[c]);
            x = x.saturating_add(text[c]);
            t |= has_tensor[c];
        }
        let i = id as usize;
        (height[i], size[i], text[i], has_tensor[i], state[i]) = (h + 1, s, x, t, DONE);
    }
    if size[root as usize] > MAX_STRUCTURE_NODES {
        bail!("pickle structure expands to more than {MAX_STRUCTURE_NODES} nodes through shared references");
    }
    if text[root as usize] > MAX_STRUCTURE_TEXT {
        bail!(
            "pickle structure expands to more than {} MiB of text through shared references",
            MAX_STRUCTURE_TEXT >> 20
        );
    }
    Ok(Analysis { has_tensor })
}

/// A dict's entries as `(key text, value)`: a repeated key keeps its first position and its
/// last value, as in Python.
fn dict_entries(p: &Pickle, pairs: &[(Id, Id)]) -> Result<Vec<(String, Id)>> {
    let mut out: Vec<(String, Id)> = Vec::with_capacity(pairs.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
    for &(k, v) in pairs {
        let key = key_text(p, k, 0)?;
        match seen.get(&key) {
            Some(&i) => out[i].1 = v,
            None => {
                seen.insert(key.clone(), out.len());
                out.push((key, v));
            }
        }
    }
    Ok(out)
}

/// How a dict key reads in a path: strings as they are, other keys as Python prints them.
fn key_text(p: &Pickle, id: Id, depth: usize) -> Result<String> {
    Ok(match p.get(id) {
        Obj::Str(s) => s.to_string(),
        Obj::Int(i) => i.to_string(),
        Obj::BigInt(b) => bigint_to_decimal(b),
        Obj::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Obj::None => "None".to_string(),
        Obj::Float(f) => format!("{f:?}"),
        Obj::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
        Obj::Tuple(items) if depth < 8 => {
            let parts: Result<Vec<String>> = items.iter().map(|&i| key_text(p, i, depth + 1)).collect();
            format!("({})", parts?.join(", "))
        }
        Obj::Tuple(_) => "(...)".to_string(),
        Obj::Global(g) => global_text(g),
        other => bail!("a {} used as a dict key", other.kind()),
    })
}

fn global_text(g: &Global) -> String {
    match g {
        Global::Dtype(d) => format!("torch.{}", d.name()),
        Global::StorageType(Some(d)) => format!("torch storage {}", d.name()),
        Global::StorageType(None) => "torch.UntypedStorage".to_string(),
        other => format!("{other:?}"),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// The children of a container with the path component of each.
fn labelled_children(p: &Pickle, obj: &Obj) -> Result<Vec<(String, Id)>> {
    Ok(match obj {
        Obj::Dict(pairs) => dict_entries(p, pairs)?,
        Obj::List(v) | Obj::Set(v) => v.iter().enumerate().map(|(i, &c)| (i.to_string(), c)).collect(),
        Obj::Tuple(v) => v.iter().enumerate().map(|(i, &c)| (i.to_string(), c)).collect(),
        _ => Vec::new(),
    })
}

fn is_container(obj: &Obj) -> bool {
    matches!(obj, Obj::List(_) | Obj::Tuple(_) | Obj::Dict(_) | Obj::Set(_))
}

/// Follow a selector such as `0.1` or `model.layer.weight` from `root`. Dict keys may contain
/// dots themselves: the longest key that matches wins. The whole graph below `root` must pass the
/// bounds [`flatten`] checks (no cycles, limited depth, nodes and text).
pub fn select(p: &Pickle, root: Id, selector: &str) -> Result<Id> {
    // Reading a dict's keys costs their text each time: bound the graph before any is read.
    analyse(p, root)?;
    let mut node = root;
    let mut rest = selector;
    let mut walked = String::new();
    while !rest.is_empty() {
        let obj = p.get(node);
        let (label, next) = match obj {
            Obj::Dict(pairs) => {
                let entries = dict_entries(p, pairs)?;
                let best = entries
                    .iter()
                    .filter(|(k, _)| rest == k || (rest.starts_with(k.as_str()) && rest[k.len()..].starts_with('.')))
                    .max_by_key(|(k, _)| k.len());
                match best {
                    Some((k, v)) => (k.clone(), *v),
                    None => {
                        let want = rest.split('.').next().unwrap_or(rest);
                        let mut keys: Vec<&str> = entries.iter().take(10).map(|(k, _)| k.as_str()).collect();
                        if entries.len() > 10 {
                            keys.push("...");
                        }
                        bail!("selector '{selector}': no key '{want}' at '{walked}' (keys: {})", keys.join(", "));
                    }
                }
            }
            Obj::List(_) | Obj::Tuple(_) | Obj::Set(_) => {
                let token = rest.split('.').next().unwrap_or(rest);
                let children = labelled_children(p, obj)?;
                let index: usize = token.parse().map_err(|_| {
                    FormatError::new(format!(
                        "selector '{selector}': '{token}' is not an index into the {} at '{walked}'",
                        obj.kind()
                    ))
                })?;
                match children.get(index) {
                    Some((label, c)) => (label.clone(), *c),
                    None => bail!(
                        "selector '{selector}': index {index} is past the {} items of the {} at '{walked}'",
                        children.len(),
                        obj.kind()
                    ),
                }
            }
            other => bail!("selector '{selector}': '{walked}' is a {}, which has nothing inside", other.kind()),
        };
        walked = join(&walked, &label);
        rest = &rest[label.len()..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
        node = next;
    }
    Ok(node)
}

/// Flatten the graph below `root`. A root that is itself a tensor or plain value is named
/// `root_name`; a root container is always opened, so its keys become names.
pub fn flatten<'p>(p: &'p Pickle, root: Id, root_name: &str) -> Result<Flat<'p>> {
    let analysis = analyse(p, root)?;
    let mut flat = Flat { tensors: Vec::new(), metadata: BTreeMap::new() };
    let mut names: HashSet<String> = HashSet::new();
    let mut claim = |name: &str| -> Result<()> {
        if !names.insert(name.to_string()) {
            bail!("two values flatten to the same name '{name}'");
        }
        Ok(())
    };

    let mut work: Vec<(Id, String, bool)> = vec![(root, String::new(), true)];
    let mut name_bytes = root_name.len();
    while let Some((id, path, is_root)) = work.pop() {
        let obj = p.get(id);
        let label = if is_root { root_name.to_string() } else { path.clone() };
        match obj {
            Obj::Tensor(t) => {
                claim(&label)?;
                flat.tensors.push((label, t));
            }
            _ if is_container(obj) && (is_root || analysis.has_tensor[id as usize]) => {
                let children = labelled_children(p, obj)?;
                for (key, c) in children.into_iter().rev() {
                    let name = join(&path, &key);
                    name_bytes = name_bytes.saturating_add(name.len());
                    if name_bytes > MAX_NAME_BYTES {
                        bail!("the names of the pickle's values add up to more than {} MiB", MAX_NAME_BYTES >> 20);
                    }
                    work.push((c, name, false));
                }
            }
            _ => {
                claim(&label)?;
                flat.metadata.insert(label, write_json(p, id, MAX_METADATA_JSON)?);
            }
        }
    }
    flat.metadata.insert(STRUCTURE_KEY.to_string(), write_json(p, root, MAX_STRUCTURE_JSON)?);
    Ok(flat)
}

/// JSON for a value, written without recursion. Tensors appear as `{"tensor": "F32[2, 3]"}`;
/// non-finite floats as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; integers of any width
/// as JSON numbers; bytes as a Python-style `"b'...'"` string. Past `limit` bytes the writer
/// stops and returns a JSON string saying what was omitted. Graphs [`flatten`] refuses are
/// refused here too.
pub fn to_json(p: &Pickle, root: Id, limit: usize) -> Result<String> {
    analyse(p, root)?;
    write_json(p, root, limit)
}

/// [`to_json`] of a graph [`analyse`] has already bounded.
fn write_json(p: &Pickle, root: Id, limit: usize) -> Result<String> {
    enum Step {
        Value(Id),
        Text(&'static str),
        Key(String),
    }
    let mut out = String::new();
    let mut work = vec![Step::Value(root)];
    while let Some(step) = work.pop() {
        if out.len() > limit {
            return Ok(omitted(limit));
        }
        let id = match step {
            Step::Text(t) => {
                out.push_str(t);
                continue;
            }
            Step::Key(k) => {
                push_json_str(&mut out, &k);
                out.push_str(": ");
                continue;
            }
            Step::Value(id) => id,
        };
        match p.get(id) {
            Obj::None => out.push_str("null"),
            Obj::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Obj::Int(i) => out.push_str(&i.to_string()),
            Obj::BigInt(b) => out.push_str(&bigint_to_decimal(b)),
            Obj::Float(f) if f.is_nan() => out.push_str("\"NaN\""),
            Obj::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" }),
            Obj::Float(f) => out.push_str(&format!("{f:?}")),
            // A long string is measured before it is copied: past the limit it is not written.
            Obj::Str(s) if out.len() + json_str_len(s) > limit => return Ok(omitted(limit)),
            Obj::Str(s) => push_json_str(&mut out, s),
            Obj::Bytes(b) if out.len() + b.len() > limit => return Ok(omitted(limit)),
            Obj::Bytes(b) => push_json_str(&mut out, &format!("b{:?}", String::from_utf8_lossy(b))),
            Obj::Global(g) => push_json_str(&mut out, &global_text(g)),
            Obj::Storage(s) => push_json_str(&mut out, &format!("storage '{}' ({} bytes)", s.key, s.nbytes)),
            Obj::Tensor(t) => {
                let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
                out.push_str("{\"tensor\": ");
                push_json_str(&mut out, &format!("{}[{}]", t.dtype.name(), dims.join(", ")));
                out.push('}');
            }
            Obj::Dict(pairs) => {
                let entries = dict_entries(p, pairs)?;
                out.push('{');
                work.push(Step::Text("}"));
                for (i, (k, v)) in entries.into_iter().enumerate().rev() {
                    work.push(Step::Value(v));
                    work.push(Step::Key(k));
                    if i > 0 {
                        work.push(Step::Text(", "));
                    }
                }
            }
            obj => {
                let items: Vec<Id> = (0..child_count(obj)).map(|i| child(obj, i)).collect();
                out.push('[');
                work.push(Step::Text("]"));
                for (i, c) in items.into_iter().enumerate().rev() {
                    work.push(Step::Value(c));
                    if i > 0 {
                        work.push(Step::Text(", "));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What stands for a value whose JSON would be longer than `limit` bytes.
fn omitted(limit: usize) -> String {
    format!("\"(omitted: more than {limit} bytes of JSON)\"")
}

/// The length of `s` as [`push_json_str`] writes it.
fn json_str_len(s: &str) -> usize {
    let escaped = |c: char| match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    };
    2 + s.chars().map(escaped).sum::<usize>()
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::parse;

    fn pickle(bytes: &[u8]) -> Pickle {
        parse(bytes, false).unwrap()
    }

    #[test]
    fn nested_values_become_json_and_selectors_walk_them() {
        // pickle.dumps({'a': [1, {'b': None, 'c': 'x'}], 'd.e': 2.5}, protocol=2)
        let p = pickle(b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01}q\x03(X\x01\x00\x00\x00bq\x04NX\x01\x00\x00\x00cq\x05X\x01\x00\x00\x00xq\x06ueX\x03\x00\x00\x00d.eq\x07G@\x04\x00\x00\x00\x00\x00\x00u.");
        let flat = flatten(&p, p.root, "file").unwrap();
        assert!(flat.tensors.is_empty());
        assert_eq!(flat.metadata["a"], r#"[1, {"b": null, "c": "x"}]"#);
        assert_eq!(flat.metadata["d.e"], "2.5");
        let sel = select(&p, p.root, "a.1").unwrap();
        let flat = flatten(&p, sel, "a.1").unwrap();
        assert_eq!(flat.metadata["b"], "null");
        assert_eq!(flat.metadata["c"], "\"x\"");
        let sel = select(&p, p.root, "d.e").unwrap();
        assert_eq!(to_json(&p, sel, 100).unwrap(), "2.5");
        assert_eq!(to_json(&p, p.root, 4).unwrap(), "\"(omitted: more than 4 bytes of JSON)\"");
        let e = select(&p, p.root, "a.7").unwrap_err().0;
        assert!(e.contains("index 7 is past the 2 items"), "{e}");
        let e = select(&p, p.root, "zz").unwrap_err().0;
        assert!(e.contains("no key 'zz'"), "{e}");
    }

    #[test]
    fn torch_sizes_and_devices_read_as_plain_values() {
        // pickle.dumps({"size": torch.Size([2, 3]), "dev": torch.device("cuda", 1), "cpu": torch.device("cpu")}, protocol=2)
        let p = pickle(b"\x80\x02}q\x00(X\x04\x00\x00\x00sizeq\x01ctorch\nSize\nq\x02K\x02K\x03\x86q\x03\x85q\x04Rq\x05X\x03\x00\x00\x00devq\x06ctorch\ndevice\nq\x07X\x04\x00\x00\x00cudaq\x08K\x01\x86q\tRq\nX\x03\x00\x00\x00cpuq\x0bh\x07X\x03\x00\x00\x00cpuq\x0c\x85q\rRq\x0eu.");
        let flat = flatten(&p, p.root, "x").unwrap();
        assert_eq!(flat.metadata["size"], "[2, 3]");
        assert_eq!(flat.metadata["dev"], "\"cuda:1\"");
        assert_eq!(flat.metadata["cpu"], "\"cpu\"");
    }

    #[test]
    fn self_containing_lists_are_refused() {
        // l = []; l.append(l); pickle.dumps(l, protocol=2)
        let p = pickle(b"\x80\x02]q\x00h\x00a.");
        let e = flatten(&p, p.root, "x").err().unwrap().0;
        assert!(e.contains("contains itself"), "{e}");
    }
}
