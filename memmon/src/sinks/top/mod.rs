//! `memmon top`: a live terminal view of memory per process (ratatui), and
//! its batch mode for scripts. Both draw [`frame::TopFrame`]s, built from the
//! same publication the daemon serves (`/api/v1/snapshot`), whether
//! memmon samples locally or reads a running daemon with `--connect`:
//! - `frame`: rows with per-second rates from two consecutive frames;
//! - `state`: sorting, filtering, tree, selection, panes, key handling;
//! - `render`: the screens;
//! - `batch`: text or JSON frames on stdout, like `top -b`;
//! - `stacks`: the selected process's fault stacks (`top --profile`).

pub mod batch;
pub mod frame;
pub mod render;
pub mod stacks;
pub mod state;
