//! A restricted unpickler for what `torch.save` writes. It never imports or runs anything.
//!
//! Python's pickle is a small stack machine whose `GLOBAL` + `REDUCE` opcodes import any
//! callable and call it: that is how `torch.load` of an untrusted file runs `os.system`. This
//! machine interprets the opcodes of protocols 0..5 that plain data and torch tensors need, and
//! knows a fixed allow-list of globals as tags ([`Global`]): torch's tensor rebuild functions,
//! storage classes and dtypes, `collections.OrderedDict`, `set`/`frozenset` and
//! `_codecs.encode` (how protocol 2 spells `bytes`). Any other global is refused by name the
//! moment it appears, before anything could be called.
//!
//! Why by hand: `serde-pickle` (1.2), the maintained Rust pickle crate, rejects the persistent-id
//! opcodes (`PERSID`/`BINPERSID`) through which every torch tensor refers to its storage,
//! resolves no globals (so `_rebuild_tensor_v2` cannot be recognised) and converts values
//! recursively (a deeply nested pickle would exhaust the stack). Here the machine is iterative,
//! objects live in an arena (shared and mutated objects behave as in Python, through the memo),
//! and every count is bounded by [`crate::limits`].

use std::collections::HashMap;

use crate::limits::{
    MAX_DIMS, MAX_PICKLE_DEPTH, MAX_PICKLE_LONG_BYTES, MAX_PICKLE_MEMO, MAX_PICKLE_OBJECTS, MAX_PICKLE_STACK,
};
use crate::{DType, FormatError, Result};

/// Index of an object in [`Pickle::objs`].
pub type Id = u32;

/// A value the restricted machine can build.
#[derive(Debug, Clone)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64: little-endian two's complement, as pickled.
    BigInt(Box<[u8]>),
    Float(f64),
    Str(Box<str>),
    Bytes(Box<[u8]>),
    List(Vec<Id>),
    Tuple(Box<[Id]>),
    /// Key/value pairs in insertion order; a repeated key is resolved when read (last wins).
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    Storage(Box<StorageRef>),
    Tensor(Box<TensorRef>),
}

impl Obj {
    /// What the object is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt(_) => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Dict(_) => "dict",
            Obj::Set(_) => "set",
            Obj::Global(_) => "global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
        }
    }
}

/// The allow-listed globals. Each is a tag: "calling" one builds a plain value here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3(untyped_storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(tensor, requires_grad, hooks, state)`
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: a tensor with Python attributes.
    RebuildFromTypeV2,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`, only meaningful as the type argument above.
    TensorClass,
    OrderedDict,
    Set,
    FrozenSet,
    /// `_codecs.encode(text, "latin1")`: protocol 2's spelling of a `bytes` literal.
    CodecsEncode,
    /// `torch.Size(tuple)`: read as the tuple.
    Size,
    /// `torch.device(type[, index])`: read as the string torch prints, `"cuda:0"`.
    Device,
    /// `torch.FloatStorage` etc. (typed), or `torch.storage.UntypedStorage` (`None`).
    StorageType(Option<DType>),
    /// `torch.float16` etc., the dtype argument of `_rebuild_tensor_v3`.
    Dtype(DType),
}

/// A storage named by a persistent id `('storage', storage_type, key, location, numel)`; its
/// bytes are the archive entry `data/<key>`.
#[derive(Debug, Clone)]
pub struct StorageRef {
    /// Element type of a typed storage; `None` for an untyped (byte) storage.
    pub dtype: Option<DType>,
    pub key: String,
    /// Declared size in bytes (numel x element size for typed storages).
    pub nbytes: u64,
}

/// A tensor: a strided view into a storage, in elements of `dtype`.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub dtype: DType,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// The result of unpickling: an arena of objects and the root.
#[derive(Debug)]
pub struct Pickle {
    pub objs: Vec<Obj>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Obj {
        &self.objs[id as usize]
    }
}

/// `(module, name) -> Global`: everything a torch.save file may reference.
fn lookup_global(module: &str, name: &str) -> Option<Global> {
    use Global::*;
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => TensorClass,
        ("collections", "OrderedDict") => OrderedDict,
        ("builtins" | "__builtin__", "set") => Set,
        ("builtins" | "__builtin__", "frozenset") => FrozenSet,
        ("_codecs", "encode") => CodecsEncode,
        ("torch", "Size") => Size,
        ("torch", "device") => Device,
        ("torch.storage" | "torch", "UntypedStorage") => StorageType(None),
        ("torch", storage) if storage.ends_with("Storage") => StorageType(Some(storage_dtype(storage)?)),
        ("torch", dtype) => Dtype(torch_dtype(dtype)?),
        _ => return None,
    })
}

/// The element type of a legacy typed storage class such as `FloatStorage`.
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::BOOL,
        _ => return None,
    })
}

/// A `torch.<dtype>` attribute name.
fn torch_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "float64" | "double" => DType::F64,
        "float32" | "float" => DType::F32,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "float8_e4m3fn" => DType::F8_E4M3,
        "float8_e5m2" => DType::F8_E5M2,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::BOOL,
        _ => return None,
    })
}

fn refuse_global(module: &str, name: &str) -> FormatError {
    let what = if module == "torch"
        && (name.ends_with("Storage")
            || name.starts_with("float")
            || name.starts_with("uint")
            || name.starts_with("complex")
            || name.starts_with("q"))
    {
        "unsupported torch element type"
    } else {
        "refused pickle global"
    };
    FormatError::new(format!(
        "{what} '{module}.{name}' (only torch tensor rebuild functions, storages, dtypes and OrderedDict are allowed; nothing was imported or executed)"
    ))
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;

    /// Names of the opcodes we refuse, for the error message.
    pub fn refused_name(code: u8) -> Option<&'static str> {
        Some(match code {
            b'S' => "STRING",
            b'V' => "UNICODE",
            b'i' => "INST",
            b'o' => "OBJ",
            0x82 => "EXT1",
            0x83 => "EXT2",
            0x84 => "EXT4",
            0x97 => "NEXT_BUFFER",
            0x98 => "READONLY_BUFFER",
            _ => return None,
        })
    }
}

/// Unpickle `data`. With `storages` false, persistent ids (tensor storages) are refused: a bare
/// pickle has no archive to take their bytes from.
pub fn parse(data: &[u8], storages: bool) -> Result<Pickle> {
    Machine::new(data, storages).run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed, for error messages.
    at: usize,
    storages: bool,
    objs: Vec<Obj>,
    /// Height of each object: 1 for scalars, 1 + its deepest child for containers.
    height: Vec<u16>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], storages: bool) -> Self {
        Self {
            data,
            pos: 0,
            at: 0,
            storages,
            objs: Vec::new(),
            height: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> FormatError {
        FormatError::new(format!("pickle byte {}: {msg}", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        match self.pos.checked_add(n).filter(|&end| end <= data.len()) {
            Some(end) => {
                let out = &data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(self.err(format!("truncated pickle (needs {n} more bytes, {} left)", data.len() - self.pos))),
        }
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64_len(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().unwrap());
        usize::try_from(n).map_err(|_| self.err(format!("length {n} is too large")))
    }

    /// A newline-terminated text argument (protocol 0 opcodes, `GLOBAL`).
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().take(4096).position(|&b| b == b'\n') else {
            return Err(self.err("unterminated text argument"));
        };
        let line = self.take(n + 1)?;
        std::str::from_utf8(&line[..n]).map_err(|_| self.err("text argument is not UTF-8"))
    }

    /// `n` bytes of UTF-8 text.
    fn text(&mut self, n: usize) -> Result<Box<str>> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map(Into::into).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn new_obj(&mut self, obj: Obj) -> Result<Id> {
        if self.objs.len() >= MAX_PICKLE_OBJECTS {
            return Err(self.err(format!("pickle creates more than {MAX_PICKLE_OBJECTS} objects")));
        }
        self.objs.push(obj);
        self.height.push(1);
        Ok((self.objs.len() - 1) as Id)
    }

    fn push(&mut self, id: Id) -> Result<()> {
        if self.stack.len() >= MAX_PICKLE_STACK {
            return Err(self.err(format!("pickle stack grows past {MAX_PICKLE_STACK} entries")));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, obj: Obj) -> Result<()> {
        let id = self.new_obj(obj)?;
        self.push(id)
    }

    fn pop(&mut self) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("pops past a MARK"));
        }
        self.stack.pop().ok_or_else(|| self.err("pops an empty stack"))
    }

    fn top(&self) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.err("reads past a MARK"));
        }
        self.stack.last().copied().ok_or_else(|| self.err("reads an empty stack"))
    }

    /// Pop everything above the topmost MARK.
    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let mark = self.marks.pop().ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(self.stack.split_off(mark))
    }

    /// Record that `child` now lives inside `parent`, refusing nesting past the depth limit.
    fn adopt(&mut self, parent: Id, child: Id) -> Result<()> {
        let h = self.height[child as usize] as usize + 1;
        if h > MAX_PICKLE_DEPTH {
            return Err(self.err(format!("pickle nests deeper than {MAX_PICKLE_DEPTH} levels")));
        }
        let slot = &mut self.height[parent as usize];
        *slot = (*slot).max(h as u16);
        Ok(())
    }

    fn new_container(&mut self, obj: Obj, children: &[Id]) -> Result<Id> {
        let id = self.new_obj(obj)?;
        for &c in children {
            self.adopt(id, c)?;
        }
        Ok(id)
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let top = self.top()?;
        if self.memo.len() >= MAX_PICKLE_MEMO && !self.memo.contains_key(&key) {
            return Err(self.err(format!("pickle memo grows past {MAX_PICKLE_MEMO} entries")));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let id = *self.memo.get(&key).ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.push(id)
    }

    fn text_u32(&self, s: &str) -> Result<u32> {
        s.trim().parse().map_err(|_| self.err(format!("bad memo key {s:?}")))
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let g = lookup_global(module, name).ok_or_else(|| {
            let e = refuse_global(module, name);
            self.err(e.0)
        })?;
        self.push_new(Obj::Global(g))
    }

    fn run(mut self) -> Result<Pickle> {
        loop {
            self.at = self.pos;
            if self.pos >= self.data.len() {
                return Err(self.err("truncated pickle (ends before STOP)"));
            }
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    let v = self.byte()?;
                    if v > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {v}")));
                    }
                }
                op::FRAME => {
                    let n = self.u64_len()?;
                    if n > self.data.len() - self.pos {
                        return Err(self.err("truncated pickle (frame longer than the data)"));
                    }
                }
                op::STOP => {
                    let root = self.stack.pop().ok_or_else(|| self.err("STOP with an empty stack"))?;
                    return Ok(Pickle { objs: self.objs, root });
                }
                op::MARK => {
                    if self.marks.len() >= MAX_PICKLE_DEPTH {
                        return Err(self.err(format!("pickle nests deeper than {MAX_PICKLE_DEPTH} levels")));
                    }
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        // Python pops the mark itself when it is on top.
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.push(top)?;
                }

                // Scalars.
                op::NONE => self.push_new(Obj::None)?,
                op::NEWTRUE => self.push_new(Obj::Bool(true))?,
                op::NEWFALSE => self.push_new(Obj::Bool(false))?,
                op::BININT => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                    self.push_new(Obj::Int(v as i64))?
                }
                op::BININT1 => {
                    let v = self.byte()?;
                    self.push_new(Obj::Int(v as i64))?
                }
                op::BININT2 => {
                    let v = self.u16()?;
                    self.push_new(Obj::Int(v as i64))?
                }
                op::LONG1 => {
                    let n = self.byte()? as usize;
                    let bytes = self.take(n)?;
                    self.push_new(long_from_bytes(bytes))?
                }
                op::LONG4 => {
                    let n = self.u32()? as usize;
                    if n > MAX_PICKLE_LONG_BYTES {
                        return Err(self.err(format!("integer of {n} bytes (limit {MAX_PICKLE_LONG_BYTES})")));
                    }
                    let bytes = self.take(n)?;
                    self.push_new(long_from_bytes(bytes))?
                }
                op::INT => {
                    let line = self.line()?;
                    let obj = match line {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        s => Obj::Int(s.parse().map_err(|_| self.err(format!("bad INT literal {s:?}")))?),
                    };
                    self.push_new(obj)?
                }
                op::LONG => {
                    let line = self.line()?;
                    let digits = line.strip_suffix('L').unwrap_or(line);
                    let v: i64 = digits.parse().map_err(|_| self.err(format!("unsupported LONG literal {line:?}")))?;
                    self.push_new(Obj::Int(v))?
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push_new(Obj::Float(v))?
                }
                op::FLOAT => {
                    let line = self.line()?;
                    let v: f64 = line.parse().map_err(|_| self.err(format!("bad FLOAT literal {line:?}")))?;
                    self.push_new(Obj::Float(v))?
                }

                // Strings and bytes.
                op::SHORT_BINUNICODE => {
                    let n = self.byte()? as usize;
                    let s = self.text(n)?;
                    self.push_new(Obj::Str(s))?
                }
                op::BINUNICODE => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.push_new(Obj::Str(s))?
                }
                op::BINUNICODE8 => {
                    let n = self.u64_len()?;
                    let s = self.text(n)?;
                    self.push_new(Obj::Str(s))?
                }
                // Python 2 `str`: torch.load decodes these as UTF-8.
                op::SHORT_BINSTRING => {
                    let n = self.byte()? as usize;
                    let s = self.text(n)?;
                    self.push_new(Obj::Str(s))?
                }
                op::BINSTRING => {
                    let n = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                    let n = usize::try_from(n).map_err(|_| self.err("negative BINSTRING length"))?;
                    let s = self.text(n)?;
                    self.push_new(Obj::Str(s))?
                }
                op::SHORT_BINBYTES => {
                    let n = self.byte()? as usize;
                    let b = self.take(n)?.into();
                    self.push_new(Obj::Bytes(b))?
                }
                op::BINBYTES => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.into();
                    self.push_new(Obj::Bytes(b))?
                }
                op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = self.u64_len()?;
                    let b = self.take(n)?.into();
                    self.push_new(Obj::Bytes(b))?
                }

                // Containers.
                op::EMPTY_LIST => self.push_new(Obj::List(Vec::new()))?,
                op::EMPTY_DICT => self.push_new(Obj::Dict(Vec::new()))?,
                op::EMPTY_SET => self.push_new(Obj::Set(Vec::new()))?,
                op::EMPTY_TUPLE => self.push_new(Obj::Tuple(Box::new([])))?,
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = (code - op::TUPLE1 + 1) as usize;
                    let mut items = vec![0; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop()?;
                    }
                    let id = self.new_container(Obj::Tuple(Box::new([])), &items)?;
                    self.objs[id as usize] = Obj::Tuple(items.into());
                    self.push(id)?
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    let id = self.new_container(Obj::Tuple(Box::new([])), &items)?;
                    self.objs[id as usize] = Obj::Tuple(items.into());
                    self.push(id)?
                }
                op::LIST => {
                    let items = self.pop_mark()?;
                    let id = self.new_container(Obj::List(Vec::new()), &items)?;
                    self.objs[id as usize] = Obj::List(items);
                    self.push(id)?
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    let id = self.new_container(Obj::Set(Vec::new()), &items)?;
                    self.objs[id as usize] = Obj::Set(items);
                    self.push(id)?
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let id = self.new_container(Obj::Dict(Vec::new()), &items)?;
                    let pairs = self.pairs(&items)?;
                    self.objs[id as usize] = Obj::Dict(pairs);
                    self.push(id)?
                }
                op::APPEND => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.extend(list, &[item])?
                }
                op::APPENDS | op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend(list, &items)?
                }
                op::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, &[key, value])?
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?
                }

                // Memo.
                op::BINPUT => {
                    let k = self.byte()? as u32;
                    self.memo_put(k)?
                }
                op::LONG_BINPUT => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                op::PUT => {
                    let line = self.line()?;
                    let k = self.text_u32(line)?;
                    self.memo_put(k)?
                }
                op::MEMOIZE => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| self.err("memo overflow"))?;
                    self.memo_put(k)?
                }
                op::BINGET => {
                    let k = self.byte()? as u32;
                    self.memo_get(k)?
                }
                op::LONG_BINGET => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                op::GET => {
                    let line = self.line()?;
                    let k = self.text_u32(line)?;
                    self.memo_get(k)?
                }

                // Globals and calls: only allow-listed tags ever get here.
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.get(module), self.get(name)) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let args = self.tuple_items(args, "REDUCE arguments")?;
                    let id = self.call(func, &args)?;
                    self.push(id)?
                }
                op::NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args = self.tuple_items(args, "NEWOBJ arguments")?;
                    let id = self.call(class, &args)?;
                    self.push(id)?
                }
                op::NEWOBJ_EX => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    if !matches!(self.get(kwargs), Obj::Dict(d) if d.is_empty()) {
                        return Err(self.err("NEWOBJ_EX with keyword arguments is not supported"));
                    }
                    let args = self.tuple_items(args, "NEWOBJ_EX arguments")?;
                    let id = self.call(class, &args)?;
                    self.push(id)?
                }
                op::BUILD => {
                    let _state = self.pop()?;
                    let target = self.top()?;
                    // torch pickles a state dict's `_metadata` (module versions) as the
                    // OrderedDict's attribute state; tensors may carry Python attributes. Neither
                    // affects the values, so the state is dropped. Other objects have no state.
                    match self.get(target) {
                        Obj::Dict(_) | Obj::Tensor(_) => {}
                        other => {
                            return Err(
                                self.err(format!("BUILD (set object state) on a {} is not supported", other.kind()))
                            );
                        }
                    }
                }
                op::BINPERSID => {
                    let pid = self.pop()?;
                    let id = self.persistent_load(pid)?;
                    self.push(id)?
                }
                op::PERSID => {
                    return Err(self.err("text persistent id (PERSID) is not a torch.save storage reference"));
                }
                other => {
                    let what = match op::refused_name(other) {
                        Some(name) => format!("unsupported pickle opcode {name} (0x{other:02x})"),
                        None => format!("invalid pickle opcode 0x{other:02x}"),
                    };
                    return Err(self.err(what));
                }
            }
        }
    }

    fn get(&self, id: Id) -> &Obj {
        &self.objs[id as usize]
    }

    fn pairs(&self, items: &[Id]) -> Result<Vec<(Id, Id)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("dict items come in an odd count"));
        }
        for pair in items.chunks_exact(2) {
            self.check_key(pair[0])?;
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    /// Dict keys must be hashable in Python; we accept the immutable scalars and tuples.
    fn check_key(&self, key: Id) -> Result<()> {
        match self.get(key) {
            Obj::List(_) | Obj::Dict(_) | Obj::Set(_) => {
                Err(self.err(format!("unhashable dict key of type {}", self.get(key).kind())))
            }
            _ => Ok(()),
        }
    }

    fn extend(&mut self, target: Id, items: &[Id]) -> Result<()> {
        for &item in items {
            self.adopt(target, item)?;
        }
        match &mut self.objs[target as usize] {
            Obj::List(v) | Obj::Set(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.err(format!("appends to a {kind} (only lists and sets)")))
            }
        }
    }

    fn set_items(&mut self, target: Id, items: &[Id]) -> Result<()> {
        let pairs = self.pairs(items)?;
        for &item in items {
            self.adopt(target, item)?;
        }
        match &mut self.objs[target as usize] {
            Obj::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.err(format!("sets items on a {kind} (only dicts)")))
            }
        }
    }

    fn tuple_items(&self, id: Id, what: &str) -> Result<Vec<Id>> {
        match self.get(id) {
            Obj::Tuple(items) => Ok(items.to_vec()),
            other => Err(self.err(format!("{what} are a {}, not a tuple", other.kind()))),
        }
    }

    fn int_arg(&self, id: Id, what: &str) -> Result<usize> {
        match self.get(id) {
            Obj::Int(v) => usize::try_from(*v).map_err(|_| self.err(format!("{what} is {v}, not a size"))),
            Obj::BigInt(_) => Err(self.err(format!("{what} is too large"))),
            other => Err(self.err(format!("{what} is a {}, not an int", other.kind()))),
        }
    }

    fn str_arg(&self, id: Id) -> Result<&str> {
        match self.get(id) {
            Obj::Str(s) => Ok(s),
            other => Err(self.err(format!("expected a str, found a {}", other.kind()))),
        }
    }

    fn ints_arg(&self, id: Id, what: &str) -> Result<Vec<usize>> {
        let items = match self.get(id) {
            Obj::Tuple(items) => items.to_vec(),
            Obj::List(items) => items.clone(),
            other => return Err(self.err(format!("{what} is a {}, not a tuple", other.kind()))),
        };
        if items.len() > MAX_DIMS {
            return Err(self.err(format!("{what} has {} dimensions (limit {MAX_DIMS})", items.len())));
        }
        items.iter().map(|&i| self.int_arg(i, what)).collect()
    }

    /// `('storage', storage_type, key, location, numel)` -> a storage reference.
    fn persistent_load(&mut self, pid: Id) -> Result<Id> {
        if !self.storages {
            return Err(self.err("persistent id (tensor storage) outside a torch.save archive"));
        }
        let parts = self.tuple_items(pid, "persistent id")?;
        let [tag, kind, key, _location, numel] = parts[..] else {
            return Err(self.err(format!(
                "persistent id has {} fields, expected ('storage', type, key, location, numel)",
                parts.len()
            )));
        };
        if !matches!(self.get(tag), Obj::Str(s) if &**s == "storage") {
            return Err(self.err("persistent id is not a 'storage' reference"));
        }
        let dtype = match self.get(kind) {
            Obj::Global(Global::StorageType(d)) => *d,
            other => return Err(self.err(format!("persistent id names a {} as its storage type", other.kind()))),
        };
        let key = match self.get(key) {
            Obj::Str(s) => s.to_string(),
            other => return Err(self.err(format!("storage key is a {}, not a str", other.kind()))),
        };
        let numel = self.int_arg(numel, "storage size")? as u64;
        let nbytes = numel
            .checked_mul(dtype.map_or(1, |d| d.size()) as u64)
            .ok_or_else(|| self.err("storage size overflows"))?;
        self.new_obj(Obj::Storage(Box::new(StorageRef { dtype, key, nbytes })))
    }

    /// Apply an allow-listed global to its arguments.
    fn call(&mut self, func: Id, args: &[Id]) -> Result<Id> {
        let g = match self.get(func) {
            Obj::Global(g) => *g,
            other => return Err(self.err(format!("calls a {}, which is not callable", other.kind()))),
        };
        match g {
            Global::RebuildTensorV2 | Global::RebuildTensorV3 => self.rebuild_tensor(g, args),
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(&t) if matches!(self.get(t), Obj::Tensor(_)) => Ok(t),
                _ => Err(self.err("_rebuild_parameter without a tensor")),
            },
            Global::RebuildFromTypeV2 => {
                let [inner, class, inner_args, _state] = args[..] else {
                    return Err(self.err("_rebuild_from_type_v2 needs 4 arguments"));
                };
                if !matches!(self.get(class), Obj::Global(Global::TensorClass)) {
                    return Err(self.err("_rebuild_from_type_v2 of a type other than Tensor or Parameter"));
                }
                if !matches!(
                    self.get(inner),
                    Obj::Global(Global::RebuildTensorV2 | Global::RebuildTensorV3 | Global::RebuildParameter)
                ) {
                    return Err(self.err("_rebuild_from_type_v2 of a function other than a tensor rebuild"));
                }
                let inner_args = self.tuple_items(inner_args, "_rebuild_from_type_v2 arguments")?;
                self.call(inner, &inner_args)
            }
            Global::OrderedDict => match args {
                [] => self.new_obj(Obj::Dict(Vec::new())),
                _ => Err(self.err("OrderedDict(...) with arguments is not supported")),
            },
            Global::Set | Global::FrozenSet => {
                let items = match args {
                    [] => Vec::new(),
                    [list] => match self.get(*list) {
                        Obj::List(v) => v.clone(),
                        Obj::Tuple(v) => v.to_vec(),
                        other => return Err(self.err(format!("set() of a {}", other.kind()))),
                    },
                    _ => return Err(self.err("set() with more than one argument")),
                };
                let id = self.new_container(Obj::Set(Vec::new()), &items)?;
                self.objs[id as usize] = Obj::Set(items);
                Ok(id)
            }
            Global::Size => match args {
                [dims] => match self.get(*dims) {
                    Obj::Tuple(items) => {
                        let items = items.clone();
                        self.new_container(Obj::Tuple(items.clone()), &items)
                    }
                    other => Err(self.err(format!("torch.Size of a {}", other.kind()))),
                },
                _ => Err(self.err("torch.Size needs one tuple")),
            },
            Global::Device => {
                let text = match args {
                    [kind] => self.str_arg(*kind)?.to_string(),
                    [kind, index] => format!("{}:{}", self.str_arg(*kind)?, self.int_arg(*index, "device index")?),
                    _ => return Err(self.err("torch.device needs a type and an optional index")),
                };
                self.new_obj(Obj::Str(text.into()))
            }
            Global::CodecsEncode => {
                let [text, encoding] = args[..] else {
                    return Err(self.err("_codecs.encode needs 2 arguments"));
                };
                match (self.get(text), self.get(encoding)) {
                    (Obj::Str(t), Obj::Str(e)) if matches!(&**e, "latin1" | "latin-1") => {
                        let bytes: Option<Vec<u8>> = t.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                        let bytes = bytes.ok_or_else(|| self.err("_codecs.encode: text is not latin-1"))?;
                        self.new_obj(Obj::Bytes(bytes.into()))
                    }
                    _ => Err(self.err("_codecs.encode only decodes latin-1 text")),
                }
            }
            Global::TensorClass | Global::StorageType(_) | Global::Dtype(_) => {
                Err(self.err("calls a torch type directly, which torch.save never does"))
            }
        }
    }

    fn rebuild_tensor(&mut self, g: Global, args: &[Id]) -> Result<Id> {
        let (min, max) = if g == Global::RebuildTensorV2 { (6, 7) } else { (7, 8) };
        if args.len() < min || args.len() > max {
            return Err(self.err(format!("tensor rebuild with {} arguments", args.len())));
        }
        let storage = match self.get(args[0]) {
            Obj::Storage(s) => (**s).clone(),
            other => return Err(self.err(format!("tensor rebuilt from a {}, not a storage", other.kind()))),
        };
        let offset = self.int_arg(args[1], "storage offset")?;
        let shape = self.ints_arg(args[2], "tensor size")?;
        let stride = self.ints_arg(args[3], "tensor stride")?;
        if shape.len() != stride.len() {
            return Err(self.err(format!("tensor has {} sizes but {} strides", shape.len(), stride.len())));
        }
        let dtype = if g == Global::RebuildTensorV3 {
            match self.get(args[6]) {
                Obj::Global(Global::Dtype(d)) => *d,
                other => return Err(self.err(format!("tensor dtype is a {}", other.kind()))),
            }
        } else {
            storage.dtype.ok_or_else(|| self.err("_rebuild_tensor_v2 of an untyped storage"))?
        };
        crate::layout::checked_numel(&shape).map_err(|e| self.err(e.0))?;
        self.new_obj(Obj::Tensor(Box::new(TensorRef { storage, dtype, offset, shape, stride })))
    }
}

/// A pickled `LONG1`/`LONG4` payload: little-endian two's complement.
fn long_from_bytes(bytes: &[u8]) -> Obj {
    if bytes.len() <= 8 {
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut buf = [if negative { 0xFF } else { 0 }; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        Obj::Int(i64::from_le_bytes(buf))
    } else {
        Obj::BigInt(bytes.into())
    }
}

/// Decimal digits of a little-endian two's complement integer.
pub fn bigint_to_decimal(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    // Magnitude: negate two's complement if negative.
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = (!*b) as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
    // Repeated division by 10^9 over big-endian u32 limbs.
    let mut limbs: Vec<u32> = mag
        .chunks(4)
        .rev()
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in limbs.iter_mut() {
            let cur = (rem << 32) | *l as u64;
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
    }
    let mut out = String::from(if negative { "-" } else { "" });
    match groups.split_last() {
        None => out.push('0'),
        Some((first, rest)) => {
            out.push_str(&first.to_string());
            for g in rest.iter().rev() {
                out.push_str(&format!("{g:09}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_print_in_decimal() {
        // 2**70 and -(2**70), as Python's LONG1 payloads.
        let mut pos = vec![0u8; 9];
        pos[8] = 0x40;
        assert_eq!(bigint_to_decimal(&pos), "1180591620717411303424");
        let neg = {
            let mut v = vec![0u8; 9];
            v[8] = 0xC0;
            v
        };
        assert_eq!(bigint_to_decimal(&neg), "-1180591620717411303424");
        assert!(matches!(long_from_bytes(&[0xFF]), Obj::Int(-1)));
        assert!(matches!(long_from_bytes(&[]), Obj::Int(0)));
    }

    #[test]
    fn plain_values_parse() {
        // pickle.dumps({'a': [1, 2.5, None, True], 'b': (b'x',)}, protocol=4) from CPython 3.11.
        let data = b"\x80\x04\x95$\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88e\x8c\x01b\x94C\x01x\x94\x85\x94u.";
        let p = parse(data, false).unwrap();
        let Obj::Dict(pairs) = p.get(p.root) else { panic!("not a dict") };
        assert_eq!(pairs.len(), 2);
        let Obj::List(items) = p.get(pairs[0].1) else { panic!("not a list") };
        assert!(matches!(p.get(items[1]), Obj::Float(v) if *v == 2.5));
        assert!(matches!(p.get(items[3]), Obj::Bool(true)));
    }

    #[test]
    fn globals_outside_the_allow_list_are_refused_by_name() {
        let data = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        let e = parse(data, false).unwrap_err().0;
        assert!(e.contains("refused pickle global 'posix.system'"), "{e}");
    }
}
