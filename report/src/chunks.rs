//! Tasks already read, rendered on every thread a chunk at a time and written in order
//! (`layoutdump-ordered`), as pending tasks are by their reader.

use crate::TaskReport;
use crate::pending::Rendered;

/// Tasks rendered per chunk, and chunks rendered ahead of the one being written.
pub(crate) const CHUNK: usize = 256;
const AHEAD: usize = 16;

/// Renders each of `tasks` (`render`) into the chunk of type `C` its worker fills, and
/// hands each chunk, in order, to `write`; the first error `write` returns ends it.
pub(crate) fn render_in_order<C: Rendered + Default, E>(
    tasks: &[TaskReport],
    render: impl Fn(&TaskReport, &mut C) + Sync,
    mut write: impl FnMut(&C) -> Result<(), E>,
) -> Result<(), E> {
    let chunks: Vec<&[TaskReport]> = tasks.chunks(CHUNK).collect();
    let plan = layoutdump_ordered::Plan {
        chunks: chunks.len(),
        workers: rayon::current_num_threads(),
        starts_after: layoutdump_ordered::window(AHEAD),
    };
    layoutdump_ordered::run(
        plan,
        |_| None::<C>,
        |spare, at| {
            let mut chunk = spare.take().unwrap_or_default();
            chunk.clear();
            for t in chunks[at] {
                render(t, &mut chunk);
            }
            chunk
        },
        // A chunk written goes back to its worker, to be rendered into again.
        |spare, chunk| *spare = Some(chunk),
        |_, _| {},
        |_, chunk| write(chunk),
    )
}
