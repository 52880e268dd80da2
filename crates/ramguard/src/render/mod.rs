//! Renderers: one file per format or display. They turn figures that were already read,
//! measured and journaled into text (`run`'s lines and progress, a terminal chart) or markup
//! (SVG, one self-contained HTML page); none of them reads the journal or the host.

pub mod html;
pub mod printer;
pub mod run;
pub mod svg;
pub mod terminal;
pub mod text;
