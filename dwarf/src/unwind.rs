//! Stack unwinding of a dump's threads (x86_64): framehop over each module's `.eh_frame`,
//! with its frame-pointer fallback; per frame the code address, the registers known there
//! and the CFA, which DWARF locations of locals need.

use std::sync::Arc;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use memmap2::Mmap;
use object::{Object, ObjectSection};

use crate::SectionBytes;
use layoutdump_dump::{Dump, Memory, Registers};

/// Frames beyond this are not unwound: a corrupt stack must not loop for long.
pub const MAX_FRAMES: usize = 256;

/// One frame of a thread's stack, innermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The instruction pointer (frame 0) or the return address (callers).
    pub pc: u64,
    /// An address inside the call instruction for callers (`pc - 1`), for looking up the
    /// function and line: a return address may already belong to the next function.
    pub lookup_pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// Canonical frame address: the caller's `sp` after this frame returns. None for the
    /// outermost frame.
    pub cfa: Option<u64>,
}

pub struct StackWalker {
    unwinder: UnwinderX86_64<SectionBytes>,
    cache: CacheX86_64,
}

impl StackWalker {
    /// Registers every module of the dump whose file is on disk (and matched its build id
    /// when the dump was opened). Modules without a file are unwound by frame pointers.
    pub fn new(dump: &Dump) -> (StackWalker, Vec<String>) {
        let mut unwinder = UnwinderX86_64::new();
        let mut warnings = Vec::new();
        for module in &dump.modules {
            let Some(path) = &module.file else { continue };
            let (Some(start), Some(end)) = (
                module.mappings.iter().map(|m| m.start).min(),
                module.mappings.iter().map(|m| m.end).max(),
            ) else {
                continue;
            };
            match section_info(path) {
                Ok(info) => unwinder.add_module(Module::new(
                    path.display().to_string(),
                    start..end,
                    start,
                    info,
                )),
                Err(e) => warnings.push(format!(
                    "cannot read unwind info of {}: {e}",
                    path.display()
                )),
            }
        }
        (
            StackWalker {
                unwinder,
                cache: CacheX86_64::new(),
            },
            warnings,
        )
    }

    /// Unwinds one thread from its registers, reading the stack from `mem`.
    pub fn frames(&mut self, mem: &dyn Memory, regs: &Registers) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut unwind_regs = UnwindRegsX86_64::new(regs.rip, regs.rsp, regs.rbp);
        let mut address = FrameAddress::from_instruction_pointer(regs.rip);
        let mut read = |addr: u64| mem.read_u64_le(addr).map_err(|_| ());
        while frames.len() < MAX_FRAMES {
            let (pc, lookup_pc) = match address {
                FrameAddress::InstructionPointer(ip) => (ip, ip),
                FrameAddress::ReturnAddress(ra) => (ra.get(), ra.get() - 1),
            };
            let (sp, bp) = (unwind_regs.sp(), unwind_regs.bp());
            let next =
                self.unwinder
                    .unwind_frame(address, &mut unwind_regs, &mut self.cache, &mut read);
            let cfa = Some(unwind_regs.sp()).filter(|_| matches!(next, Ok(Some(_))));
            frames.push(Frame {
                pc,
                lookup_pc,
                sp,
                bp,
                cfa,
            });
            match next {
                // Returning into the signal trampoline: the interrupted code's registers
                // are in the signal frame the kernel pushed; go on from there.
                Ok(Some(ra)) if is_sigreturn_trampoline(mem, ra) => {
                    let Some((ip, sp_at, bp_at)) = signal_context(mem, unwind_regs.sp()) else {
                        break;
                    };
                    frames.push(Frame {
                        pc: ra,
                        lookup_pc: ra,
                        sp: unwind_regs.sp(),
                        bp: unwind_regs.bp(),
                        cfa: None,
                    });
                    unwind_regs = UnwindRegsX86_64::new(ip, sp_at, bp_at);
                    address = FrameAddress::from_instruction_pointer(ip);
                }
                Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                    // A stack that does not grow towards the caller is corrupt or ended.
                    Some(a) if unwind_regs.sp() > sp => address = a,
                    _ => break,
                },
                _ => break,
            }
        }
        frames
    }
}

/// x86_64 Linux `__restore_rt`: `mov $15, %rax; syscall` (rt_sigreturn). A handler
/// returns there; the code is the same in every libc, so it is recognized by its bytes.
fn is_sigreturn_trampoline(mem: &dyn Memory, pc: u64) -> bool {
    const CODE: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
    let mut buf = [0u8; 9];
    mem.read(pc, &mut buf).is_ok() && buf == CODE
}

/// The interrupted registers (rip, rsp, rbp) from the `ucontext` at `uc` (the stack
/// pointer after the handler returned): `uc_mcontext.gregs` start 40 bytes in, and hold
/// RBP at index 10, RSP at 15, RIP at 16.
fn signal_context(mem: &dyn Memory, uc: u64) -> Option<(u64, u64, u64)> {
    let greg = |i: u64| mem.read_u64_le(uc.wrapping_add(40 + 8 * i)).ok();
    let (rip, rsp, rbp) = (greg(16)?, greg(15)?, greg(10)?);
    (rip != 0 && rsp != 0).then_some((rip, rsp, rbp))
}

/// The sections framehop needs, borrowed from a memory map of the file.
fn section_info(path: &std::path::Path) -> Result<ExplicitModuleSectionInfo<SectionBytes>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: read-only map of a file we do not modify (see dwarf/mod.rs).
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?);
    let obj = object::File::parse(&map[..]).map_err(|e| e.to_string())?;
    let section = |name: &str| -> (Option<std::ops::Range<u64>>, Option<SectionBytes>) {
        let Some(s) = obj.section_by_name(name) else {
            return (None, None);
        };
        let range = s.address()..s.address() + s.size();
        let bytes = s.file_range().and_then(|(off, size)| {
            let (start, end) = (
                usize::try_from(off).ok()?,
                usize::try_from(off.checked_add(size)?).ok()?,
            );
            (end <= map.len()).then(|| SectionBytes::Mapped {
                map: map.clone(),
                start,
                end,
            })
        });
        (Some(range), bytes)
    };
    let (text_svma, text) = section(".text");
    let (eh_frame_svma, eh_frame) = section(".eh_frame");
    let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr");
    let (got_svma, _) = section(".got");
    let (_, debug_frame) = section(".debug_frame");
    Ok(ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma,
        text,
        got_svma,
        eh_frame_svma,
        eh_frame,
        eh_frame_hdr_svma,
        eh_frame_hdr,
        debug_frame,
        stubs_svma: None,
        stub_helper_svma: None,
        unwind_info: None,
        text_segment_svma: None,
        text_segment: None,
    })
}
