//! Renderers for `record`, `report` and `plan`: one file per format. They turn figures that
//! were already read and computed into text (a terminal chart) or markup (SVG, one
//! self-contained HTML page); none of them reads the journal or the host.

pub mod html;
pub mod notes;
pub mod svg;
pub mod terminal;
