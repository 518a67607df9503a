//! Local variables and parameters of a function at a code address, and the evaluation of
//! their DWARF locations in one stack frame. Like gimli's own design, evaluation never
//! reads memory by itself: it asks the caller's `Memory` when the expression needs it.

use std::sync::Arc;

use gimli::{AttributeValue, EvaluationResult, Location};

use super::units::{attr_ref, attr_str, malformed};
use super::{DebugInfo, DieId, DwarfError, LinkAddr, Reader};
use layoutdump_dump::Memory;

/// Register values known in one frame (after unwinding only these are).
#[derive(Debug, Clone, Copy)]
pub struct FrameRegs {
    pub sp: u64,
    pub bp: u64,
    pub cfa: Option<u64>,
}

/// A variable or parameter of a function, live at some address.
#[derive(Debug, Clone)]
pub struct Local {
    pub name: Arc<str>,
    pub ty: Option<DieId>,
    location: Option<AttributeValue<Reader>>,
}

/// How many DIEs of one function are visited looking for locals.
const MAX_DIES: usize = 100_000;
/// Operations one location expression may take.
const MAX_STEPS: usize = 10_000;

impl DebugInfo {
    /// Variables and parameters of function `func` visible at `pc`: its direct ones and
    /// those of lexical blocks containing `pc` (not those of inlined callees).
    pub fn locals(&self, func: DieId, pc: LinkAddr) -> Result<Vec<Local>, DwarfError> {
        let (unit, off) = self
            .locate(func)
            .ok_or_else(|| malformed(self, func, "offset outside every unit"))?;
        let mut tree = unit
            .entries_tree(Some(off))
            .map_err(|e| malformed(self, func, &e.to_string()))?;
        let root = tree
            .root()
            .map_err(|e| malformed(self, func, &e.to_string()))?;
        // A closure's or coroutine's body (`{closure#0}`, `{async_fn#0}`): its own
        // parameter, which rustc leaves unnamed, is called `self`.
        let body = attr_str(self.dwarf(), unit, root.entry(), gimli::DW_AT_name)
            .is_some_and(|n| n.starts_with("{closure#") || n.starts_with("{async_"));
        let mut out = Vec::new();
        let mut visited = 0;
        // Lexical blocks have no parameters: `params` starts as if one came before.
        self.collect_locals(unit, root, pc, &mut out, (&mut visited, !body))?;
        Ok(out)
    }

    fn collect_locals(
        &self,
        unit: &gimli::Unit<Reader>,
        node: gimli::EntriesTreeNode<'_, '_, Reader>,
        pc: LinkAddr,
        out: &mut Vec<Local>,
        (visited, mut params): (&mut usize, bool),
    ) -> Result<(), DwarfError> {
        let mut children = node.children();
        while let Some(child) = children.next().map_err(|e| DwarfError::Malformed {
            path: self.path().into(),
            offset: 0,
            reason: e.to_string(),
        })? {
            *visited += 1;
            if *visited > MAX_DIES {
                break;
            }
            let e = child.entry();
            match e.tag() {
                gimli::DW_TAG_variable | gimli::DW_TAG_formal_parameter => {
                    // A parameter named only through DW_AT_abstract_origin (an out-of-line
                    // instance's) is left out. rustc leaves a closure's or coroutine's own parameter (its
                    // environment: `Pin<&mut {async_fn_env#0}>` in an async fn's body)
                    // unnamed; it is the body's first, and is called `self` here.
                    let unnamed_self = e.tag() == gimli::DW_TAG_formal_parameter && !params;
                    params |= e.tag() == gimli::DW_TAG_formal_parameter;
                    let name = attr_str(self.dwarf(), unit, e, gimli::DW_AT_name)
                        .or_else(|| unnamed_self.then(|| Arc::from("self")));
                    if let Some(name) = name {
                        out.push(Local {
                            name,
                            ty: attr_ref(unit, e, gimli::DW_AT_type),
                            location: e.attr_value(gimli::DW_AT_location),
                        });
                    }
                }
                gimli::DW_TAG_lexical_block if self.die_contains(unit, e, pc) => {
                    self.collect_locals(unit, child, pc, out, (visited, true))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the code ranges of `e` (low/high pc or a range list) contain `pc`.
    pub(super) fn die_contains(
        &self,
        unit: &gimli::Unit<Reader>,
        e: &gimli::DebuggingInformationEntry<Reader>,
        pc: LinkAddr,
    ) -> bool {
        let Ok(mut ranges) = self.dwarf().die_ranges(unit, e) else {
            return false;
        };
        for _ in 0..4096 {
            match ranges.next() {
                Ok(Some(r)) if r.begin <= pc.0 && pc.0 < r.end => return true,
                Ok(Some(_)) => {}
                _ => return false,
            }
        }
        false
    }

    /// The runtime address of `local` in a frame of `func` stopped at `pc`, or why there
    /// is none (optimized out, in a register that unwinding does not recover, …).
    pub fn local_address(
        &self,
        func: DieId,
        local: &Local,
        pc: LinkAddr,
        regs: FrameRegs,
        mem: &dyn Memory,
        bias: u64,
    ) -> Result<u64, String> {
        let (unit, _) = self.locate(func).ok_or("function outside every unit")?;
        let expr = match &local.location {
            None => return Err(format!("`{}` is optimized out (no location)", local.name)),
            Some(AttributeValue::Exprloc(expr)) => expr.clone(),
            Some(attr) => {
                let mut list = self
                    .dwarf()
                    .attr_locations(unit, attr.clone())
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("`{}` has no location list", local.name))?;
                let mut found = None;
                for _ in 0..4096 {
                    match list.next() {
                        Ok(Some(entry)) if entry.range.begin <= pc.0 && pc.0 < entry.range.end => {
                            found = Some(entry.data);
                            break;
                        }
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
                found.ok_or_else(|| format!("`{}` is optimized out at this point", local.name))?
            }
        };
        let frame_base = self.frame_base(unit, func, regs, mem, bias)?;
        let located = evaluate(expr, unit.encoding(), regs, frame_base, mem, bias)
            .map_err(|why| format!("`{}`: {why}", local.name))?;
        match located {
            Location::Address { address } => Ok(address),
            Location::Register { register } => Err(format!(
                "`{}` lives in register {} (not recovered by unwinding)",
                local.name, register.0
            )),
            Location::Empty => Err(format!("`{}` is optimized out", local.name)),
            other => Err(format!(
                "`{}` has a location this tool does not read yet: {other:?}",
                local.name
            )),
        }
    }

    fn frame_base(
        &self,
        unit: &gimli::Unit<Reader>,
        func: DieId,
        regs: FrameRegs,
        mem: &dyn Memory,
        bias: u64,
    ) -> Result<Option<u64>, String> {
        let (_, off) = self.locate(func).ok_or("function outside every unit")?;
        let entry = unit.entry(off).map_err(|e| e.to_string())?;
        let Some(AttributeValue::Exprloc(expr)) = entry.attr_value(gimli::DW_AT_frame_base) else {
            return Ok(None);
        };
        match evaluate(expr, unit.encoding(), regs, None, mem, bias)? {
            // `DW_OP_reg7` (rsp) / `DW_OP_reg6` (rbp): the frame base is that register's value.
            Location::Register { register } => register_value(register, regs).map(Some),
            Location::Address { address } => Ok(Some(address)),
            _ => Ok(None),
        }
    }
}

fn register_value(register: gimli::Register, regs: FrameRegs) -> Result<u64, String> {
    match register {
        gimli::X86_64::RSP => Ok(regs.sp),
        gimli::X86_64::RBP => Ok(regs.bp),
        other => Err(format!(
            "register {} is not recovered by unwinding",
            other.0
        )),
    }
}

/// Runs a location expression, answering gimli's requests from the frame and memory.
fn evaluate(
    expr: gimli::Expression<Reader>,
    encoding: gimli::Encoding,
    regs: FrameRegs,
    frame_base: Option<u64>,
    mem: &dyn Memory,
    bias: u64,
) -> Result<Location<Reader>, String> {
    let mut eval = expr.evaluation(encoding);
    let mut result = eval.evaluate().map_err(|e| e.to_string())?;
    for _ in 0..MAX_STEPS {
        result = match result {
            EvaluationResult::Complete => {
                let pieces = eval.result();
                return pieces
                    .into_iter()
                    .next()
                    .map(|p| p.location)
                    .ok_or_else(|| "empty location".to_string());
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = register_value(register, regs)?;
                eval.resume_with_register(gimli::Value::Generic(v))
                    .map_err(|e| e.to_string())?
            }
            EvaluationResult::RequiresFrameBase => {
                let fb = frame_base.ok_or("the function has no frame base")?;
                eval.resume_with_frame_base(fb).map_err(|e| e.to_string())?
            }
            EvaluationResult::RequiresCallFrameCfa => {
                let cfa = regs.cfa.ok_or("no CFA for the outermost frame")?;
                eval.resume_with_call_frame_cfa(cfa)
                    .map_err(|e| e.to_string())?
            }
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let mut buf = [0u8; 8];
                let n = usize::from(size).min(8);
                mem.read(address, &mut buf[..n])
                    .map_err(|e| e.to_string())?;
                eval.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(buf)))
                    .map_err(|e| e.to_string())?
            }
            EvaluationResult::RequiresRelocatedAddress(a) => eval
                .resume_with_relocated_address(a.wrapping_add(bias))
                .map_err(|e| e.to_string())?,
            // DW_OP_entry_value: "the value this register had when the function was
            // entered", which only the caller's frame could tell: optimized out for us.
            EvaluationResult::RequiresEntryValue(_) => {
                return Err("optimized out (described only by its value at function entry)".into());
            }
            EvaluationResult::RequiresTls(_) => {
                return Err("a thread-local location is not expected here".into());
            }
            _ => {
                return Err(
                    "the location needs a DWARF feature this tool does not evaluate yet".into(),
                );
            }
        };
    }
    Err("location expression too long".into())
}
