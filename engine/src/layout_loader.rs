//! A layout argument resolved: a shipped layout's name (the table is `layoutdump-layouts`,
//! embedded in the binary) or a file; and the loader that resolves `use NAME` the same way.

use std::path::{Path, PathBuf};

use layoutdump_lang::{Loader, SourceFile};

use layoutdump_layouts::LIBRARIES;
pub use layoutdump_layouts::SHIPPED;

/// Layouts a user can run by name (std is a prelude, not a runtime).
pub fn runnable() -> impl Iterator<Item = &'static str> {
    SHIPPED
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !LIBRARIES.contains(n))
}

/// Whether `name` is a shipped layout that other layouts `use` (futures, hyper, …) rather
/// than one that finds a runtime.
pub fn is_library(name: &str) -> bool {
    LIBRARIES.contains(&name)
}

/// Resolves a layout argument: a shipped name, or a path to a `.layout` file.
pub fn load_layout(arg: &str) -> Result<SourceFile, String> {
    if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == arg) {
        return Ok(SourceFile {
            name: format!("<shipped>/{name}.layout"),
            text: (*text).to_string(),
        });
    }
    let path = Path::new(arg);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile {
            name: arg.to_string(),
            text,
        }),
        Err(e) => {
            let names: Vec<&str> = runnable().collect();
            Err(format!(
                "`{arg}` is neither a shipped layout ({}) nor a readable file: {e}",
                names.join(", ")
            ))
        }
    }
}

/// `use NAME`: a shipped layout by name, else a file relative to the using layout's folder.
pub struct LayoutLoader {
    pub dir: Option<PathBuf>,
}

impl Loader for LayoutLoader {
    fn load(&self, name: &str) -> Result<SourceFile, String> {
        if let Some((n, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
            return Ok(SourceFile {
                name: format!("<shipped>/{n}.layout"),
                text: (*text).to_string(),
            });
        }
        let path = self
            .dir
            .clone()
            .unwrap_or_default()
            .join(format!("{name}.layout"));
        std::fs::read_to_string(&path)
            .map(|text| SourceFile {
                name: path.display().to_string(),
                text,
            })
            .map_err(|e| {
                format!(
                    "no shipped layout `{name}` and cannot read {}: {e}",
                    path.display()
                )
            })
    }
}

/// Compiles a layout given by name or path, with its `use`s.
pub fn compile_layout(arg: &str) -> Result<layoutdump_lang::Program, String> {
    let main = load_layout(arg)?;
    let dir = Path::new(arg).parent().map(Path::to_path_buf);
    layoutdump_lang::compile(main, &LayoutLoader { dir }).map_err(|d| d.to_string())
}

/// The shipped library layout with a view of the type named `ty` (`slab` for
/// `slab::Slab<u64>`), for a check that finds the type used as a sequence without one.
pub fn shipped_view_for(ty: &str) -> Option<&'static str> {
    SHIPPED.iter().map(|(name, _)| *name).find(|name| {
        compile_layout(name).is_ok_and(|p| {
            // The layout's own views (file 0), not those of the layouts it uses.
            p.views
                .iter()
                .any(|v| v.span.file.0 == 0 && v.pattern.matches(ty))
        })
    })
}
