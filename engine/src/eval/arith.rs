//! Arithmetic over members, compiled: an expression of numbers evaluated once the long way
//! becomes a postfix program whose operands keep their routes, run on every later task.

use layoutdump_lang::program::{BinOp, Builtin, Expr, ExprId, UnOp};

use super::cache::{Known, ReadNumber};
use super::plan::{self, Plan, Site};
use super::{EvalError, Evaluator, Frame, Value};
use crate::dwarf::DieId;

/// Operations of a compiled expression, in postfix order.
#[derive(Debug)]
pub enum Op {
    Const(i128),
    /// A binding that held a number (an `Int` or an `Addr`).
    Number {
        slot: u16,
    },
    /// `addr(x)` of a binding: the address of the value it holds.
    AddrOf {
        slot: u16,
    },
    /// A binding that held a value of type `ty`, or a member of it (`route`, to a value
    /// of type `reached`), read as a number: its bytes are `number` from there, read as
    /// `read`.
    Member {
        slot: u16,
        ty: DieId,
        route: Option<Plan>,
        reached: DieId,
        number: Plan,
        read: ReadNumber,
    },
    Binary(BinOp),
    Unary(UnOp),
}

/// A compiled expression and the steps its long way counts (the top node's included).
/// Compiled from `+ - * / % << >>`, comparisons, `-x`, `!x`, literals, members of the
/// rule's bindings and `addr(binding)`. Running it checks what it depended on (each
/// binding's type, each route, each number's reading) and counts the steps the long way
/// counts; anything else (another type, a null pointer, a division by zero, the step
/// limit) falls back to the long way. Results, errors and steps are the same either way.
#[derive(Debug)]
pub struct Program {
    ops: Vec<Op>,
    steps: u64,
    /// The type each binding it reads held (None: a number), which it was compiled for.
    shape: Vec<(u16, Option<DieId>)>,
}

/// What is known of an expression's compiled form.
#[derive(Default)]
pub enum Compiled {
    /// Not evaluated yet, or its long way failed every time so far.
    #[default]
    Untried,
    /// One program per shape of the bindings seen: tokio's task list links reach the
    /// same `Header` as another compile unit's type than its head does.
    Ready(Vec<Program>),
    /// Not an expression of numbers over members: always the long way.
    Never,
}

/// Shapes of bindings compiled for, per expression; others take the long way.
const MAX_SHAPES: usize = 4;

/// Operands on the stack of a program: deeper expressions take the long way.
const MAX_STACK: usize = 16;

/// A program's operands: an array and a length, not a `SmallVec`, whose check of where
/// its items are on every push and pop was a third of running `Sleep`'s `left_ms`.
#[derive(Default)]
struct Stack {
    items: [i128; MAX_STACK],
    len: usize,
}

impl Stack {
    #[inline]
    fn push(&mut self, v: i128) -> Option<()> {
        *self.items.get_mut(self.len)? = v;
        self.len += 1;
        Some(())
    }

    #[inline]
    fn pop(&mut self) -> Option<i128> {
        self.len = self.len.checked_sub(1)?;
        Some(self.items[self.len])
    }
}

/// `x op y` on numbers, as the long way computes it.
pub fn int_op(op: BinOp, x: i128, y: i128) -> Result<i128, EvalError> {
    Ok(match op {
        BinOp::Or => x | y,
        BinOp::And => x & y,
        BinOp::Eq => i128::from(x == y),
        BinOp::Ne => i128::from(x != y),
        BinOp::Lt => i128::from(x < y),
        BinOp::Le => i128::from(x <= y),
        BinOp::Gt => i128::from(x > y),
        BinOp::Ge => i128::from(x >= y),
        BinOp::Shl => x
            .checked_shl(u32::try_from(y).unwrap_or(u32::MAX))
            .unwrap_or(0),
        BinOp::Shr => x
            .checked_shr(u32::try_from(y).unwrap_or(u32::MAX))
            .unwrap_or(0),
        BinOp::Add => x.wrapping_add(y),
        BinOp::Sub => x.wrapping_sub(y),
        BinOp::Mul => x.wrapping_mul(y),
        BinOp::Div => x
            .checked_div(y)
            .ok_or_else(|| EvalError::Other("division by zero".into()))?,
        BinOp::Rem => x
            .checked_rem(y)
            .ok_or_else(|| EvalError::Other("division by zero".into()))?,
    })
}

/// `-x` and `!x` on a number, as the long way computes them (`*x` is not arithmetic).
pub fn int_unary(op: UnOp, x: i128) -> Option<i128> {
    match op {
        UnOp::Neg => Some(x.wrapping_neg()),
        UnOp::Not => Some(i128::from(x == 0)),
        UnOp::Deref => None,
    }
}

impl Evaluator<'_> {
    /// Evaluates the arithmetic expression `id` by its compiled program, if it has one
    /// that holds for these bindings: its value, with the steps of the long way counted
    /// (the top node's step was counted by the caller). None: take the long way.
    pub(super) fn compiled_arith(&self, id: ExprId, frame: &Frame) -> Option<Value> {
        if self.recording.get() > 0 {
            return None;
        }
        let compiled = self.cache.arith.borrow();
        let Some(Compiled::Ready(programs)) = compiled.get(id.0 as usize) else {
            return None;
        };
        for program in programs {
            let more = program.steps.saturating_sub(1);
            // Past the step limit the long way stops at the step that crosses it.
            if self.steps.get().saturating_add(more) > self.step_limit.get() {
                return None;
            }
            if let Some(value) = self.run_arith(program, frame) {
                self.steps.set(self.steps.get() + more);
                return Some(Value::Int(value));
            }
        }
        None
    }

    fn run_arith(&self, program: &Program, frame: &Frame) -> Option<i128> {
        let mut stack = Stack::default();
        for op in &program.ops {
            let value = match op {
                Op::Const(n) => *n,
                Op::Number { slot } => match frame.get(usize::from(*slot))? {
                    Some(Value::Int(n)) => *n,
                    Some(Value::Addr(a)) => i128::from(*a),
                    _ => return None,
                },
                Op::AddrOf { slot } => match frame.get(usize::from(*slot))? {
                    Some(Value::Place { addr, .. } | Value::Addr(addr)) => i128::from(*addr),
                    Some(Value::Int(a)) => i128::from(*a as u64),
                    _ => return None,
                },
                Op::Member {
                    slot,
                    ty,
                    route,
                    reached,
                    number,
                    read,
                } => {
                    let Some(Value::Place { addr, ty: held }) = frame.get(usize::from(*slot))?
                    else {
                        return None;
                    };
                    if held != ty {
                        return None;
                    }
                    let (mut at, mut at_ty) = (*addr, *ty);
                    if let Some(route) = route {
                        (at, at_ty) = plan::replay(route, self, at, at_ty)?;
                    }
                    if at_ty != *reached {
                        return None;
                    }
                    let (at, _) = plan::replay(number, self, at, at_ty)?;
                    self.read_number(at, *read).ok()?
                }
                Op::Binary(op) => {
                    let y = stack.pop()?;
                    let x = stack.pop()?;
                    int_op(*op, x, y).ok()?
                }
                Op::Unary(op) => int_unary(*op, stack.pop()?)?,
            };
            stack.push(value)?;
        }
        stack.pop()
    }

    /// After the long way evaluated `id` to a number: compiles it for the shape of these
    /// bindings, from the routes and number readings that evaluation left in the caches,
    /// unless that shape has a program (or the expression cannot have one).
    pub(super) fn compile_arith(&self, id: ExprId, frame: &Frame) {
        let open = match self.cache.arith.borrow().get(id.0 as usize) {
            Some(Compiled::Never) => false,
            Some(Compiled::Ready(programs)) => programs.len() < MAX_SHAPES,
            Some(Compiled::Untried) | None => true,
        };
        if !open || self.recording.get() > 0 {
            return;
        }
        let mut program = Program {
            ops: Vec::new(),
            steps: 0,
            shape: Vec::new(),
        };
        let made = self.compile_node(id, frame, &mut program, 0).is_some()
            && program.ops.len() <= MAX_STACK * 2;
        let mut all = self.cache.arith.borrow_mut();
        if all.len() < self.program.exprs.len() {
            all.resize_with(self.program.exprs.len(), Compiled::default);
        }
        let Some(slot) = all.get_mut(id.0 as usize) else {
            return;
        };
        match slot {
            Compiled::Ready(programs) => {
                // A route that broke on this value (a null pointer), not a new shape.
                if made && programs.iter().all(|p| p.shape != program.shape) {
                    programs.push(program);
                }
            }
            _ if made => *slot = Compiled::Ready(vec![program]),
            _ => *slot = Compiled::Never,
        }
    }

    fn compile_node(
        &self,
        id: ExprId,
        frame: &Frame,
        out: &mut Program,
        depth: usize,
    ) -> Option<()> {
        // Deeper than a program may be: the long way (and no deep recursion here).
        if depth > MAX_STACK {
            return None;
        }
        out.steps += 1;
        match self.program.expr(id) {
            Expr::Int(n) => out.ops.push(Op::Const(i128::from(*n))),
            Expr::Binary(op, a, b) => {
                self.compile_node(*a, frame, out, depth + 1)?;
                self.compile_node(*b, frame, out, depth + 1)?;
                out.ops.push(Op::Binary(*op));
            }
            // `addr(hdr)`: the call and its argument are a step each.
            Expr::Call {
                func: Builtin::Addr,
                args,
            } => {
                let [arg] = args.as_slice() else {
                    return None;
                };
                let Expr::Local(slot) = self.program.expr(*arg) else {
                    return None;
                };
                match frame.get(usize::from(slot.0))? {
                    Some(Value::Place { .. } | Value::Addr(_) | Value::Int(_)) => {}
                    _ => return None,
                }
                // Any value's address will do: no type to tell shapes apart.
                out.shape.push((slot.0, None));
                out.steps += 1;
                out.ops.push(Op::AddrOf { slot: slot.0 });
            }
            Expr::Unary(op, e) if *op != UnOp::Deref => {
                self.compile_node(*e, frame, out, depth + 1)?;
                out.ops.push(Op::Unary(*op));
            }
            Expr::Local(slot) => match frame.get(usize::from(slot.0))? {
                Some(Value::Int(_) | Value::Addr(_)) => {
                    out.shape.push((slot.0, None));
                    out.ops.push(Op::Number { slot: slot.0 });
                }
                Some(Value::Place { ty, .. }) => {
                    let op = self.member_op(slot.0, *ty, None, out)?;
                    out.ops.push(op);
                }
                _ => return None,
            },
            Expr::Field(..) => {
                // A member or a chain of members of a binding: `deadline.tv_sec`,
                // `time.inner.state.wheel.elapsed`.
                let (root, inner) = self.program.chain_shape(id);
                let inner = u64::from(inner);
                let Expr::Local(slot) = self.program.expr(root) else {
                    return None;
                };
                let Some(Value::Place { ty, .. }) = frame.get(usize::from(slot.0))? else {
                    return None;
                };
                let site = if inner == 0 {
                    Site::Field(id)
                } else {
                    Site::Chain(id)
                };
                let route = match self.cache.plans.borrow().get(&(site, *ty)) {
                    Some(Known::Route((route, steps))) => {
                        // The chain's inner members and its root, then the route.
                        out.steps += inner + 1 + steps;
                        route.clone()
                    }
                    _ => return None,
                };
                let op = self.member_op(slot.0, *ty, Some(route), out)?;
                out.ops.push(op);
            }
            _ => return None,
        }
        Some(())
    }

    /// The operand that reads binding `slot` (of type `ty`), through `route` if a member
    /// of it, as a number: how the number of the type reached is read.
    fn member_op(
        &self,
        slot: u16,
        ty: DieId,
        route: Option<Plan>,
        out: &mut Program,
    ) -> Option<Op> {
        let reached = route
            .as_deref()
            .and_then(|r| {
                r.iter().rev().find_map(|op| match op {
                    plan::Op::Offset { ty, .. } | plan::Op::Load { ty } => Some(*ty),
                    _ => None,
                })
            })
            .unwrap_or(ty);
        let numbers = self.cache.numbers.borrow();
        let known = numbers.get(&reached)?;
        out.steps += known.planned.1;
        out.shape.push((slot, Some(ty)));
        Some(Op::Member {
            slot,
            ty,
            route,
            reached,
            number: known.planned.0.clone(),
            read: known.read,
        })
    }
}
