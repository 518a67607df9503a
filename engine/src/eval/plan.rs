//! Recorded access paths: the first time a site (a `.field`, a view member) is evaluated on
//! a type, its route is recorded as plain steps (offset, load, tag check), and later
//! evaluations on that type replay them.

use crate::dwarf::DieId;
use crate::memory::Bytes;

/// Tags a niche-encoded enum's default variant must not hold (an `Option<NonNull<T>>`
/// has one: 0). Enums with more explicit tags than this are not planned through.
pub const MAX_EXCLUDED: usize = 3;

/// One step of a route, applied to an address (and the type it has then).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// A member at this offset, of this type.
    Offset { offset: u64, ty: DieId },
    /// Through a pointer (which must not be null) to its pointee type.
    Load { ty: DieId },
    /// The enum tag of `size` bytes at `offset` must equal `tag` (an explicit variant).
    TagIs { offset: u64, size: u8, tag: u64 },
    /// The tag must be none of `tags[..count]` (the enum's default, dataful variant).
    TagNot {
        offset: u64,
        size: u8,
        count: u8,
        tags: [u64; MAX_EXCLUDED],
    },
}

// Only a chain of those steps is recorded: anything else on the way (arithmetic, a cast,
// a call, a hook, a `for`) spoils the recording and the site always takes the long way.
// A replay that meets a null pointer, an unreadable byte or another variant stops, and
// the long way says why: errors read exactly as they do without plans.
/// A recorded route; the result's type is the last step's.
pub type Plan = Box<[Op]>;

/// Replays `plan` from the object at `addr`: the place it leads to, or None where a check
/// fails or memory is missing (the caller then takes the long way, which says why).
pub fn replay<B: Bytes + ?Sized>(
    plan: &[Op],
    mem: &B,
    mut addr: u64,
    mut ty: DieId,
) -> Option<(u64, DieId)> {
    for op in plan {
        match *op {
            Op::Offset { offset, ty: t } => {
                addr = addr.wrapping_add(offset);
                ty = t;
            }
            Op::Load { ty: t } => {
                addr = mem.u64_le(addr).ok().filter(|&a| a != 0)?;
                ty = t;
            }
            Op::TagIs { offset, size, tag } => {
                if read_tag(mem, addr.wrapping_add(offset), size)? != tag {
                    return None;
                }
            }
            Op::TagNot {
                offset,
                size,
                count,
                tags,
            } => {
                let t = read_tag(mem, addr.wrapping_add(offset), size)?;
                if tags[..usize::from(count)].contains(&t) {
                    return None;
                }
            }
        }
    }
    Some((addr, ty))
}

fn read_tag<B: Bytes + ?Sized>(mem: &B, at: u64, size: u8) -> Option<u64> {
    let mut buf = [0u8; 8];
    mem.bytes(at, &mut buf[..usize::from(size.clamp(1, 8))])
        .ok()?;
    Some(u64::from_le_bytes(buf))
}

/// The routes being recorded now, innermost last: a site evaluated while another is being
/// recorded is part of the outer route too, so every step goes to every open recording.
#[derive(Default)]
pub struct Recorder {
    open: Vec<Recording>,
}

#[derive(Default)]
struct Recording {
    ops: Vec<Op>,
    spoiled: bool,
}

/// Steps past this spoil a recording: a route that long is not a plain member chain.
const MAX_OPS: usize = 64;

impl Recorder {
    pub fn begin(&mut self) {
        self.open.push(Recording::default());
    }

    /// Ends the innermost recording: its route, unless it was spoiled.
    pub fn end(&mut self) -> Option<Plan> {
        let r = self.open.pop()?;
        (!r.spoiled).then(|| r.ops.into_boxed_slice())
    }

    pub fn step(&mut self, op: Op) {
        for r in &mut self.open {
            // Members of members are one offset: Sleep's `s.deadline.std.0.t.tv_sec` is
            // replayed as one step, not five.
            if !r.spoiled
                && let Op::Offset { offset: b, ty } = op
                && let Some(Op::Offset {
                    offset: a,
                    ty: last,
                }) = r.ops.last_mut()
            {
                *a = a.wrapping_add(b);
                *last = ty;
                continue;
            }
            if r.ops.len() >= MAX_OPS {
                r.spoiled = true;
            }
            if !r.spoiled {
                r.ops.push(op);
            }
        }
    }

    /// A replayed plan's steps, added to the routes that contain it.
    pub fn steps(&mut self, ops: &[Op]) {
        for op in ops {
            self.step(*op);
        }
    }

    /// Something that is not a plain step happened: no open recording is a plan.
    pub fn spoil(&mut self) {
        for r in &mut self.open {
            r.spoiled = true;
        }
    }
}

/// The check an enum's chosen variant depends on: its explicit tag, or (for the default
/// variant) that the tag is none of the explicit ones. None when there are too many
/// explicit tags to list.
pub fn tag_check(offset: u64, size: u8, chosen: Option<u64>, explicit: &[u64]) -> Option<Op> {
    match chosen {
        Some(tag) => Some(Op::TagIs { offset, size, tag }),
        None if explicit.len() <= MAX_EXCLUDED => {
            let mut tags = [0u64; MAX_EXCLUDED];
            tags[..explicit.len()].copy_from_slice(explicit);
            Some(Op::TagNot {
                offset,
                size,
                count: explicit.len() as u8,
                tags,
            })
        }
        None => None,
    }
}

/// What a site is: a `.field` expression or a chain of them, a view's member (view index, member index), or
/// the way from a value to the number it stands for (an `AtomicUsize` to its `usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    Field(layoutdump_lang::program::ExprId),
    /// A chain of `.field`s (`a.b.c`), by its outermost one, from the root's type.
    Chain(layoutdump_lang::program::ExprId),
    ViewMember(u32, u32),
    Number,
    /// A list link to the node it points at (`list_node`).
    Node,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    fn mem(words: &[(u64, u64)]) -> SliceMemory {
        words
            .iter()
            .fold(SliceMemory::new(), |m, &(addr, v)| m.with_u64(addr, v))
    }

    #[test]
    fn replay_follows_offsets_pointers_and_tags() {
        let m = mem(&[(0x1008, 0x2000), (0x2010, 1)]);
        let plan = [
            Op::Offset {
                offset: 8,
                ty: DieId(1),
            },
            Op::Load { ty: DieId(2) },
            Op::TagIs {
                offset: 0x10,
                size: 1,
                tag: 1,
            },
            Op::Offset {
                offset: 0x18,
                ty: DieId(3),
            },
        ];
        assert_eq!(
            replay(&plan, &m, 0x1000, DieId(0)),
            Some((0x2018, DieId(3)))
        );
    }

    #[test]
    fn replay_stops_where_the_route_no_longer_holds() {
        // A null pointer, a missing word, a tag of another variant: no result, so the
        // caller evaluates the long way and reports why.
        let null = mem(&[(0x1000, 0)]);
        assert_eq!(
            replay(&[Op::Load { ty: DieId(1) }], &null, 0x1000, DieId(0)),
            None
        );
        assert_eq!(
            replay(&[Op::Load { ty: DieId(1) }], &null, 0x5000, DieId(0)),
            None
        );
        let tagged = mem(&[(0x1000, 2)]);
        let is_one = Op::TagIs {
            offset: 0,
            size: 8,
            tag: 1,
        };
        assert_eq!(replay(&[is_one], &tagged, 0x1000, DieId(0)), None);
        let not_two = tag_check(0, 8, None, &[2]).unwrap();
        assert_eq!(replay(&[not_two], &tagged, 0x1000, DieId(0)), None);
        let not_zero = tag_check(0, 8, None, &[0]).unwrap();
        assert_eq!(
            replay(&[not_zero], &tagged, 0x1000, DieId(0)),
            Some((0x1000, DieId(0)))
        );
    }

    #[test]
    fn a_spoiled_recording_is_no_plan_and_steps_reach_every_open_recording() {
        let mut r = Recorder::default();
        r.begin();
        r.step(Op::Offset {
            offset: 1,
            ty: DieId(1),
        });
        r.begin();
        r.step(Op::Load { ty: DieId(2) });
        assert_eq!(r.end().as_deref(), Some(&[Op::Load { ty: DieId(2) }][..]));
        assert_eq!(r.end().map(|p| p.len()), Some(2));
        r.begin();
        r.begin();
        r.spoil();
        assert_eq!(r.end(), None);
        assert_eq!(r.end(), None);
        assert!(r.open.is_empty());
    }

    /// Members of members are recorded as one offset, each recording on its own: a route
    /// recorded inside another starts at its own first step.
    #[test]
    fn consecutive_offsets_are_one_step() {
        let off = |offset, ty| Op::Offset {
            offset,
            ty: DieId(ty),
        };
        let mut r = Recorder::default();
        r.begin();
        r.step(off(8, 1));
        r.begin();
        r.step(off(0x10, 2));
        r.step(off(4, 3));
        r.step(Op::Load { ty: DieId(4) });
        r.step(off(2, 5));
        r.step(off(1, 6));
        let inner = [off(0x14, 3), Op::Load { ty: DieId(4) }, off(3, 6)];
        assert_eq!(r.end().as_deref(), Some(&inner[..]));
        let outer = [off(0x1c, 3), Op::Load { ty: DieId(4) }, off(3, 6)];
        assert_eq!(r.end().as_deref(), Some(&outer[..]));
        // Replayed, the folded route lands where the steps one by one land.
        let m = mem(&[(0x101c, 0x2000)]);
        assert_eq!(
            replay(&outer, &m, 0x1000, DieId(0)),
            Some((0x2003, DieId(6)))
        );
    }

    #[test]
    fn default_variants_of_enums_with_many_tags_are_not_planned() {
        assert!(tag_check(0, 1, None, &[0, 1, 2, 3]).is_none());
        assert!(tag_check(0, 1, Some(7), &[0, 1, 2, 3, 7]).is_some());
    }
}
