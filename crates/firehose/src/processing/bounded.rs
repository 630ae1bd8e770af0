//! The values a MetadataExtraction query computes with, under a budget. A query is user code run
//! inside the server: `"ab" | (. + .) | (. + .) | ...` doubles a string forty times, and nested
//! `.[]` loops run for hours, so a single record could abort the process (allocation failure,
//! stack overflow) and, being durable, abort it again after every restart. [`Bounded`] wraps
//! jaq's JSON value and checks every value as it is produced, before the big allocation where it
//! can (a concatenation is refused from its operands' sizes): each value stays under
//! [`MAX_VALUE_BYTES`] and [`MAX_DEPTH`], and one evaluation under [`MAX_STEPS`] value operations
//! and [`MAX_TIME`]. The first bound exceeded is remembered for the evaluation ([`evaluate`]), so a
//! `try` in the query cannot swallow it: the record fails alone.

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::time::{Duration, Instant};

use jaq_core::box_iter::BoxIter;
use jaq_core::path::Opt;
use jaq_core::{Exn, ValX};
use jaq_json::Val;

/// The largest value a query may build, counted roughly as memory: 16 bytes per value plus the
/// bytes of strings. A 1 MiB record parses to at most about 12 MiB.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// How deeply a query's values may nest (deeper values overflow the stack when dropped or printed).
pub const MAX_DEPTH: usize = 128;
/// Value operations one evaluation may perform (a few hundred per record for ordinary queries).
pub const MAX_STEPS: u64 = 20_000_000;
/// Wall-clock time one evaluation may take.
pub const MAX_TIME: Duration = Duration::from_secs(2);

/// Which bound an evaluation exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Size,
    Depth,
    Steps,
    Time,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Size => write!(f, "a value larger than {} MiB", MAX_VALUE_BYTES >> 20),
            Self::Depth => write!(f, "a value nested deeper than {MAX_DEPTH} levels"),
            Self::Steps => write!(f, "more than {MAX_STEPS} operations"),
            Self::Time => write!(f, "more than {} s", MAX_TIME.as_secs()),
        }
    }
}

#[derive(Clone, Copy)]
struct Budget {
    steps_left: u64,
    deadline: Instant,
    exceeded: Option<Exceeded>,
}

thread_local! {
    /// The budget of the evaluation running on this thread; None outside [`evaluate`] (values
    /// built then, e.g. a query's constants at compile time, are not limited).
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Runs one evaluation under a fresh budget: Err names the bound it exceeded, whatever `run`
/// returned.
pub fn evaluate<T>(run: impl FnOnce() -> T) -> Result<T, Exceeded> {
    let budget = Budget { steps_left: MAX_STEPS, deadline: Instant::now() + MAX_TIME, exceeded: None };
    let previous = BUDGET.replace(Some(budget));
    let output = run();
    let exceeded = BUDGET.replace(previous).and_then(|budget| budget.exceeded);
    match exceeded {
        Some(exceeded) => Err(exceeded),
        None => Ok(output),
    }
}

fn exceed(bound: Exceeded) -> Error {
    BUDGET.with(|cell| {
        if let Some(mut budget) = cell.get() {
            budget.exceeded.get_or_insert(bound);
            cell.set(Some(budget));
        }
    });
    // Built without `Bounded::new`, which charges the budget: that would end up here again.
    Error::new(Bounded::from_checked(Val::from(format!("the query exceeded its bounds: {bound}"))))
}

/// Spends `steps` of the budget; Err once any bound is exceeded (it stays exceeded).
fn charge(steps: u64) -> Result<(), Error> {
    let Some(mut budget) = BUDGET.get() else {
        return Ok(());
    };
    if let Some(bound) = budget.exceeded {
        return Err(exceed(bound));
    }
    // Reading the clock costs more than a step: look at it every 4096 steps.
    let before = budget.steps_left;
    budget.steps_left = budget.steps_left.saturating_sub(steps);
    BUDGET.set(Some(budget));
    if budget.steps_left == 0 {
        return Err(exceed(Exceeded::Steps));
    }
    if before / 4096 != budget.steps_left / 4096 && Instant::now() > budget.deadline {
        return Err(exceed(Exceeded::Time));
    }
    Ok(())
}

type Error = jaq_core::Error<Bounded>;
type ValR = jaq_core::ValR<Bounded>;

/// A JSON value with its size and depth, known to be within bounds.
#[derive(Debug)]
pub struct Bounded {
    val: Val,
    bytes: usize,
    depth: usize,
}

/// What a value costs in [`MAX_VALUE_BYTES`], without its children.
fn own_bytes(val: &Val) -> usize {
    16 + match val {
        Val::TStr(s) | Val::BStr(s) => s.len(),
        _ => 0,
    }
}

impl Bounded {
    /// Measures a value jaq produced (walking it, so the walk is charged too).
    fn new(val: Val) -> Result<Self, Error> {
        let (mut bytes, mut depth) = (0usize, 0usize);
        let mut stack = vec![(&val, 1usize)];
        while let Some((node, level)) = stack.pop() {
            bytes += own_bytes(node);
            depth = depth.max(level);
            if bytes > MAX_VALUE_BYTES {
                return Err(exceed(Exceeded::Size));
            }
            if depth > MAX_DEPTH {
                return Err(exceed(Exceeded::Depth));
            }
            match node {
                Val::Arr(items) => stack.extend(items.iter().map(|item| (item, level + 1))),
                Val::Obj(entries) => {
                    stack.extend(entries.iter().flat_map(|(key, value)| [(key, level + 1), (value, level + 1)]))
                }
                _ => {}
            }
        }
        charge((bytes / 64) as u64 + 1)?;
        Ok(Self { val, bytes, depth })
    }

    /// For jaq's infallible constructors: a value over the bounds becomes null, and the evaluation
    /// fails at its end ([`evaluate`]).
    fn new_or_null(val: Val) -> Self {
        Self::new(val).unwrap_or_else(|_| Self::from_checked(Val::Null))
    }

    fn from_checked(val: Val) -> Self {
        let bytes = own_bytes(&val);
        Self { val, bytes, depth: 1 }
    }

    /// Checks the size and depth a container of `children` would have, before building it.
    fn container<'c>(children: impl IntoIterator<Item = &'c Self>) -> Result<(usize, usize), Error> {
        let (mut bytes, mut depth) = (16usize, 0usize);
        for child in children {
            bytes = bytes.saturating_add(child.bytes);
            depth = depth.max(child.depth);
            if bytes > MAX_VALUE_BYTES {
                return Err(exceed(Exceeded::Size));
            }
        }
        if depth + 1 > MAX_DEPTH {
            return Err(exceed(Exceeded::Depth));
        }
        Ok((bytes, depth + 1))
    }

    pub fn into_val(self) -> Val {
        self.val
    }

    pub fn val(&self) -> &Val {
        &self.val
    }

    pub fn parse(record: &[u8]) -> Result<Self, String> {
        let val = jaq_json::read::parse_single(record).map_err(|e| format!("record is not valid JSON: {e}"))?;
        Self::new(val).map_err(|e| e.to_string())
    }
}

/// jaq's errors about plain values, as errors about bounded ones (what `catch` sees is unchanged).
fn lift(error: jaq_core::Error<Val>) -> Error {
    match Bounded::new(error.into_val()) {
        Ok(value) => Error::new(value),
        Err(exceeded) => exceeded,
    }
}

fn lift_r(result: jaq_core::ValR<Val>) -> ValR {
    result.map_err(lift).and_then(Bounded::new)
}

/// An exception of an update's function, for jaq's plain-value update code (and back).
fn lower_exn<'a>(exn: Exn<'a, Bounded>) -> Exn<'a, Val> {
    match exn.get_err() {
        Ok(error) => Exn::from(jaq_core::Error::new(error.into_val().val)),
        Err(exn) => match exn.get_halt() {
            Ok(code) => Exn::halt(code),
            Err(_) => Exn::from(jaq_core::Error::str("`break` out of an update is not supported")),
        },
    }
}

fn lift_x(result: ValX<'_, Val>) -> ValX<'_, Bounded> {
    match result {
        Ok(val) => Bounded::new(val).map_err(Exn::from),
        Err(exn) => Err(match exn.get_err() {
            Ok(error) => Exn::from(lift(error)),
            Err(exn) => match exn.get_halt() {
                Ok(code) => Exn::halt(code),
                Err(_) => Exn::from(Error::str("`break` out of an update is not supported")),
            },
        }),
    }
}

/// One output of an update function, for jaq's plain-value update code.
type Lower<'a> = fn(ValX<'a, Bounded>) -> ValX<'a, Val>;

/// Adapts an update function over bounded values to jaq's update code over plain values.
fn lower_update<'a, I: Iterator<Item = ValX<'a, Bounded>>>(
    f: impl Fn(Bounded) -> I,
) -> impl Fn(Val) -> std::iter::Map<I, Lower<'a>> {
    move |val| {
        let lower: Lower<'a> = |result| result.map(Bounded::into_val).map_err(lower_exn);
        f(Bounded::new_or_null(val)).map(lower)
    }
}

impl Clone for Bounded {
    fn clone(&self) -> Self {
        // Cloning shares the value (jaq's containers are reference-counted); it is charged
        // because every loop in jaq clones, so this counts the work of loops that build nothing.
        if charge(1).is_err() {
            return Self::from_checked(Val::Null);
        }
        Self { val: self.val.clone(), bytes: self.bytes, depth: self.depth }
    }
}

impl fmt::Display for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.val.fmt(f)
    }
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.val == other.val
    }
}

impl Eq for Bounded {}

impl PartialOrd for Bounded {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bounded {
    fn cmp(&self, other: &Self) -> Ordering {
        self.val.cmp(&other.val)
    }
}

impl From<bool> for Bounded {
    fn from(b: bool) -> Self {
        Self::from_checked(Val::from(b))
    }
}

impl From<isize> for Bounded {
    fn from(i: isize) -> Self {
        Self::from_checked(Val::from(i))
    }
}

impl From<usize> for Bounded {
    fn from(i: usize) -> Self {
        Self::from_checked(Val::from(i))
    }
}

impl From<f64> for Bounded {
    fn from(f: f64) -> Self {
        Self::from_checked(Val::from(f))
    }
}

impl From<String> for Bounded {
    fn from(s: String) -> Self {
        Self::new_or_null(Val::from(s))
    }
}

impl From<jaq_core::val::Range<Bounded>> for Bounded {
    fn from(range: jaq_core::val::Range<Bounded>) -> Self {
        Self::new_or_null(Val::from(range.start.map(Self::into_val)..range.end.map(Self::into_val)))
    }
}

impl FromIterator<Bounded> for Bounded {
    /// Collects `[f]`, stopping as soon as the array would be too large or `f` too long.
    fn from_iter<T: IntoIterator<Item = Bounded>>(iter: T) -> Self {
        let (mut items, mut bytes, mut depth) = (Vec::new(), 16usize, 0usize);
        for item in iter {
            bytes = bytes.saturating_add(item.bytes);
            depth = depth.max(item.depth);
            if bytes > MAX_VALUE_BYTES {
                exceed(Exceeded::Size);
                return Self::from_checked(Val::Null);
            }
            if charge(1).is_err() {
                return Self::from_checked(Val::Null);
            }
            items.push(item.val);
        }
        if depth + 1 > MAX_DEPTH {
            exceed(Exceeded::Depth);
            return Self::from_checked(Val::Null);
        }
        Self { val: items.into_iter().collect(), bytes, depth: depth + 1 }
    }
}

macro_rules! checked_op {
    ($trait:ident, $method:ident) => {
        impl std::ops::$trait for Bounded {
            type Output = ValR;
            fn $method(self, other: Self) -> ValR {
                charge(1)?;
                lift_r(std::ops::$trait::$method(self.val, other.val))
            }
        }
    };
}

impl std::ops::Add for Bounded {
    type Output = ValR;
    /// Concatenation (strings, arrays, objects) is refused from the operands' sizes, before
    /// anything is allocated: doubling is how queries blow up.
    fn add(self, other: Self) -> ValR {
        Self::container([&self, &other])?;
        charge(1)?;
        lift_r(self.val + other.val)
    }
}

impl std::ops::Mul for Bounded {
    type Output = ValR;
    /// `"s" * n` repeats a string n times: refused from its result's size. (Objects merge
    /// deeply, within their operands' sizes.)
    fn mul(self, other: Self) -> ValR {
        let repeat = |s: &Val, n: &Val| match (s, n) {
            (Val::TStr(s) | Val::BStr(s), Val::Num(_)) => {
                use jaq_std::ValT;
                Some(s.len().saturating_mul(n.as_f64().unwrap_or(0.0).max(0.0).min(usize::MAX as f64) as usize))
            }
            _ => None,
        };
        let result_bytes = repeat(&self.val, &other.val).or_else(|| repeat(&other.val, &self.val));
        if result_bytes.is_some_and(|bytes| bytes > MAX_VALUE_BYTES) {
            return Err(exceed(Exceeded::Size));
        }
        Self::container([&self, &other])?;
        charge(1)?;
        lift_r(self.val * other.val)
    }
}

checked_op!(Sub, sub);
checked_op!(Div, div);
checked_op!(Rem, rem);

impl std::ops::Neg for Bounded {
    type Output = ValR;
    fn neg(self) -> ValR {
        charge(1)?;
        lift_r(-self.val)
    }
}

impl jaq_core::ValT for Bounded {
    fn from_num(n: &str) -> ValR {
        lift_r(Val::from_num(n))
    }

    fn from_map<I: IntoIterator<Item = (Self, Self)>>(iter: I) -> ValR {
        let (mut entries, mut bytes, mut depth) = (Vec::new(), 16usize, 0usize);
        for (key, value) in iter {
            charge(1)?;
            let (pair_bytes, pair_depth) = Self::container([&key, &value])?;
            bytes = bytes.saturating_add(pair_bytes);
            depth = depth.max(pair_depth);
            if bytes > MAX_VALUE_BYTES {
                return Err(exceed(Exceeded::Size));
            }
            entries.push((key.val, value.val));
        }
        let val = Val::from_map(entries).map_err(lift)?;
        Ok(Self { val, bytes, depth })
    }

    fn key_values(self) -> BoxIter<'static, jaq_core::ValR<(Self, Self), Self>> {
        Box::new(self.val.key_values().map(|entry| {
            charge(1)?;
            let (key, value) = entry.map_err(lift)?;
            Ok((Bounded::new(key)?, Bounded::new(value)?))
        }))
    }

    fn values(self) -> Box<dyn Iterator<Item = ValR>> {
        Box::new(self.val.values().map(|item| {
            charge(1)?;
            item.map_err(lift).and_then(Bounded::new)
        }))
    }

    fn index(self, index: &Self) -> ValR {
        charge(1)?;
        lift_r(self.val.index(&index.val))
    }

    fn range(self, range: jaq_core::val::Range<&Self>) -> ValR {
        charge(1)?;
        lift_r(self.val.range(range.start.map(Self::val)..range.end.map(Self::val)))
    }

    fn map_values<'a, I: Iterator<Item = ValX<'a, Self>>>(self, opt: Opt, f: impl Fn(Self) -> I) -> ValX<'a, Self> {
        charge(1)?;
        lift_x(self.val.map_values(opt, lower_update(f)))
    }

    fn map_index<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        index: &Self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        charge(1)?;
        lift_x(self.val.map_index(&index.val, opt, lower_update(f)))
    }

    fn map_range<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        range: jaq_core::val::Range<&Self>,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        charge(1)?;
        lift_x(self.val.map_range(range.start.map(Self::val)..range.end.map(Self::val), opt, lower_update(f)))
    }

    fn as_bool(&self) -> bool {
        self.val.as_bool()
    }

    fn into_string(self) -> Self {
        // A non-string becomes its JSON text: at most six bytes per byte of a value within bounds.
        Self::new_or_null(self.val.into_string())
    }
}

impl jaq_std::ValT for Bounded {
    fn into_seq<S: FromIterator<Self>>(self) -> Result<S, Self> {
        let (bytes, depth) = (self.bytes, self.depth);
        match self.val.into_seq::<Vec<Val>>() {
            Ok(items) => Ok(items.into_iter().map(Self::new_or_null).collect()),
            Err(val) => Err(Self { val, bytes, depth }),
        }
    }

    fn is_int(&self) -> bool {
        self.val.is_int()
    }

    fn as_isize(&self) -> Option<isize> {
        self.val.as_isize()
    }

    fn as_f64(&self) -> Option<f64> {
        self.val.as_f64()
    }

    fn is_utf8_str(&self) -> bool {
        self.val.is_utf8_str()
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        self.val.as_bytes()
    }

    fn as_sub_str(&self, sub: &[u8]) -> Self {
        Self::from_checked(self.val.as_sub_str(sub))
    }

    fn from_utf8_bytes(b: impl AsRef<[u8]> + Send + 'static) -> Self {
        Self::new_or_null(Val::from_utf8_bytes(b))
    }
}

/// jaq-json's own filters (`tojson`, `fromjson`, `length`, ...), which it defines for its plain
/// values only, over bounded ones.
pub fn json_funs<D: for<'a> jaq_core::DataT<V<'a> = Bounded>>() -> impl Iterator<Item = jaq_core::native::Fun<D>> {
    use jaq_core::native::{bome, run, unary, v, Filter};
    use jaq_core::RunPtr;
    let funs: [Filter<RunPtr<D>>; 7] = [
        ("fromjson", v(0), |cv| {
            let parsed = match cv.1.val() {
                Val::TStr(text) => {
                    if super::partitioning::nesting_depth(text) > MAX_DEPTH {
                        Err(exceed(Exceeded::Depth))
                    } else {
                        jaq_json::read::parse_single(text)
                            .map_err(|e| Error::str(format!("cannot parse {} as JSON: {e}", cv.1)))
                            .and_then(Bounded::new)
                    }
                }
                _ => Err(Error::typ(cv.1.clone(), "string")),
            };
            bome(parsed)
        }),
        ("tojson", v(0), |cv| bome(Bounded::new(Val::from(cv.1.val.to_string())))),
        ("length", v(0), |cv| bome(length(&cv.1.val).map_err(|()| Error::str(format!("{} has no length", cv.1))))),
        ("contains", v(1), |cv| unary(cv, |x, y| Ok(Bounded::from(contains(&x.val, &y.val))))),
        ("has", v(1), |cv| {
            unary(cv, |v, k| match (&v.val, &k.val) {
                (Val::Obj(entries), _) => Ok(Bounded::from(entries.contains_key(&k.val))),
                (Val::Arr(items), Val::Num(_)) => {
                    use jaq_std::ValT;
                    Ok(Bounded::from(k.val.as_isize().is_some_and(|i| i >= 0 && (i as usize) < items.len())))
                }
                _ => Err(Error::index(v.clone(), k.clone())),
            })
        }),
        ("indices", v(1), |cv| {
            unary(cv, |x, y| indices(&x.val, &y.val).map_err(|()| Error::index(x.clone(), y.clone())))
        }),
        ("bsearch", v(1), |cv| {
            unary(cv, |a, x| match &a.val {
                Val::Arr(items) => {
                    let found = items.binary_search(&x.val).map_or_else(|i| -1 - i as isize, |i| i as isize);
                    Ok(Bounded::from(found))
                }
                _ => Err(Error::typ(a.clone(), "array")),
            })
        }),
    ];
    funs.into_iter().map(run::<D>)
}

/// jq's `length`: the absolute value of a number, the size of the rest; Err for booleans.
fn length(val: &Val) -> Result<Bounded, ()> {
    Ok(match val {
        Val::Null => Bounded::from(0usize),
        Val::Num(_) if *val < Val::from(0isize) => return lift_r(-val.clone()).map_err(|_| ()),
        Val::Num(_) => Bounded::from_checked(val.clone()),
        Val::TStr(s) => Bounded::from(String::from_utf8_lossy(s).chars().count()),
        Val::BStr(b) => Bounded::from(b.len()),
        Val::Arr(items) => Bounded::from(items.len()),
        Val::Obj(entries) => Bounded::from(entries.len()),
        Val::Bool(_) => return Err(()),
    })
}

/// jq's `contains`: substrings, and containment inside arrays and objects.
fn contains(haystack: &Val, needle: &Val) -> bool {
    match (haystack, needle) {
        (Val::TStr(l), Val::TStr(r)) | (Val::BStr(l), Val::BStr(r)) => {
            r.is_empty() || l.windows(r.len()).any(|window| window == &r[..])
        }
        (Val::Arr(l), Val::Arr(r)) => r.iter().all(|r| l.iter().any(|l| contains(l, r))),
        (Val::Obj(l), Val::Obj(r)) => r.iter().all(|(k, r)| l.get(k).is_some_and(|l| contains(l, r))),
        _ => haystack == needle,
    }
}

/// jq's `indices`: where a substring, subarray or element occurs.
fn indices(haystack: &Val, needle: &Val) -> Result<Bounded, ()> {
    let positions: Vec<usize> = match (haystack, needle) {
        (Val::TStr(x), Val::TStr(y)) | (Val::BStr(x), Val::BStr(y)) if y.is_empty() => Vec::new(),
        (Val::TStr(x), Val::TStr(y)) => {
            // Character positions, as jq counts them.
            let text = String::from_utf8_lossy(x);
            let needle = String::from_utf8_lossy(y);
            text.char_indices()
                .enumerate()
                .filter(|(_, (at, _))| text[*at..].starts_with(&*needle))
                .map(|(i, _)| i)
                .collect()
        }
        (Val::BStr(x), Val::BStr(y)) => {
            x.windows(y.len()).enumerate().filter(|(_, w)| *w == &y[..]).map(|(i, _)| i).collect()
        }
        (Val::Arr(_), Val::Arr(y)) if y.is_empty() => Vec::new(),
        (Val::Arr(x), Val::Arr(y)) => {
            x.windows(y.len()).enumerate().filter(|(_, w)| *w == &y[..]).map(|(i, _)| i).collect()
        }
        (Val::Arr(x), y) => x.iter().enumerate().filter(|(_, x)| *x == y).map(|(i, _)| i).collect(),
        _ => return Err(()),
    };
    Ok(positions.into_iter().map(Bounded::from).collect())
}
