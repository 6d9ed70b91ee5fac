//! The live view on a terminal: drawn below whatever was printed, redrawn in place (cursor
//! up over the previous frame, erase to the end of the screen, draw), once a second on its
//! own so that the step's clock moves between ticks, and at every change.
//!
//! Lines printed while the view is up ([`LiveScreen::print_above`]: the driver's lines, the
//! crates' warnings) go above it, so nothing is ever glued onto a frame. At the end the last
//! frame is drawn once more and left on the screen, and whatever comes next (the summary)
//! starts on a line of its own below it.
//!
//! Every write to the terminal goes through one lock, so the redrawing thread and the
//! rollout never interleave their output.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use canary_core::policy::Policy;
use canary_core::rollout::Rollout;
use jiff::Timestamp;

use super::view::{self, Snapshot};

/// How often the view is redrawn between changes.
const REDRAW_EVERY: Duration = Duration::from_secs(1);

/// How many notices the view keeps below the criteria.
const RECENT_NOTICES: usize = 4;

/// What the view shows, and how much of the terminal its last frame took.
#[derive(Default)]
struct ViewState {
    rollout: Option<Rollout>,
    policy: Option<Arc<Policy>>,
    recent: VecDeque<String>,
    driver: Option<String>,
    /// Lines of the frame on the screen now (0: none).
    drawn: usize,
    colour: bool,
    /// Set once the view has ended: nothing more is drawn.
    ended: bool,
}

/// A live view on standard error.
pub(crate) struct LiveScreen {
    state: Mutex<ViewState>,
    /// Wakes the redrawing thread early to stop it.
    stop: (Mutex<bool>, Condvar),
}

impl std::fmt::Debug for LiveScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveScreen").finish_non_exhaustive()
    }
}

/// The live view in use, if any: the `tracing` writer prints above it.
static ACTIVE: Mutex<Option<Arc<LiveScreen>>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while drawing leaves the terminal as it was: carry on with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LiveScreen {
    /// Starts a live view and its redrawing thread.
    pub(crate) fn start(colour: bool) -> Arc<LiveScreen> {
        let screen = Arc::new(LiveScreen {
            state: Mutex::new(ViewState {
                colour,
                ..ViewState::default()
            }),
            stop: (Mutex::new(false), Condvar::new()),
        });
        *lock(&ACTIVE) = Some(screen.clone());
        let redrawing = screen.clone();
        std::thread::spawn(move || redrawing.redraw_until_stopped());
        screen
    }

    fn redraw_until_stopped(&self) {
        let (stopped, wake) = &self.stop;
        let mut guard = lock(stopped);
        while !*guard {
            guard = wake
                .wait_timeout(guard, REDRAW_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if !*guard {
                let mut state = lock(&self.state);
                draw(&mut state);
            }
        }
    }

    /// The policy the view takes step counts, lengths and units from.
    pub(crate) fn set_policy(&self, policy: &Policy) {
        lock(&self.state).policy = Some(Arc::new(policy.clone()));
    }

    /// Who drives the rollout (for a view of a rollout run elsewhere).
    pub(crate) fn set_driver(&self, driver: Option<String>) {
        lock(&self.state).driver = driver;
    }

    /// Replaces the recent notices (a view of a rollout run elsewhere has none: it lists
    /// what the state recorded instead).
    pub(crate) fn set_recent(&self, lines: Vec<String>) {
        let mut state = lock(&self.state);
        state.recent = lines.into_iter().collect();
        while state.recent.len() > RECENT_NOTICES {
            state.recent.pop_front();
        }
    }

    /// Shows `rollout` as it stands now.
    pub(crate) fn show(&self, rollout: &Rollout) {
        let mut state = lock(&self.state);
        state.rollout = Some(rollout.clone());
        draw(&mut state);
    }

    /// Adds a notice to the recent ones.
    pub(crate) fn notice(&self, line: String) {
        let mut state = lock(&self.state);
        state.recent.push_back(line);
        while state.recent.len() > RECENT_NOTICES {
            state.recent.pop_front();
        }
    }

    /// Prints `text` above the view (it stays in the terminal's scrollback).
    pub(crate) fn print_above(&self, text: &str) {
        let mut state = lock(&self.state);
        let mut frame = erase(&mut state);
        frame.push_str(text);
        if !text.ends_with('\n') {
            frame.push('\n');
        }
        write(&frame);
        draw(&mut state);
    }

    /// Ends the view: stops the redrawing, draws the last frame and leaves it on the screen.
    pub(crate) fn end(&self) {
        {
            let (stopped, wake) = &self.stop;
            *lock(stopped) = true;
            wake.notify_all();
        }
        let mut state = lock(&self.state);
        if !state.ended {
            draw(&mut state);
            state.ended = true;
            // The frame stays: the next frame (there is none) would have erased it.
            state.drawn = 0;
        }
        let mut active = lock(&ACTIVE);
        if active
            .as_ref()
            .is_some_and(|a| std::ptr::eq(Arc::as_ptr(a), self))
        {
            *active = None;
        }
    }
}

/// Prints `text` above the live view if one is up; false when there is none (the caller
/// writes to stderr itself).
pub(crate) fn print_above_active(text: &str) -> bool {
    let active = lock(&ACTIVE).clone();
    match active {
        Some(screen) => {
            screen.print_above(text);
            true
        }
        None => false,
    }
}

/// Ends the live view if one is up (before anything is printed that must not be glued to
/// it or erased by it: the summary).
pub(crate) fn end_active() {
    let active = lock(&ACTIVE).clone();
    if let Some(screen) = active {
        screen.end();
    }
}

/// The escape codes that erase the frame on the screen (the cursor is at the start of the
/// line below it).
fn erase(state: &mut ViewState) -> String {
    let frame = match state.drawn {
        0 => String::new(),
        n => format!("\r\x1b[{n}A\x1b[J"),
    };
    state.drawn = 0;
    frame
}

/// Redraws the frame: the view's lines as wide as the terminal is now, at most as many as
/// fit its height (the notices go first; the criteria never).
fn draw(state: &mut ViewState) {
    if state.ended {
        return;
    }
    let Some(rollout) = &state.rollout else {
        return;
    };
    let (rows, cols) = console::Term::stderr().size_checked().unwrap_or((24, 80));
    // One column spare: a line that fills the last column leaves some terminals waiting to
    // wrap, and the next line would start one too low.
    let width = usize::from(cols).saturating_sub(1);
    let recent: Vec<String> = state.recent.iter().cloned().collect();
    let snapshot = Snapshot {
        rollout,
        policy: state.policy.as_deref(),
        now: Timestamp::now(),
        recent: &recent,
        driver: state.driver.as_deref(),
    };
    let mut lines = view::lines(&snapshot, width, state.colour);
    let room = usize::from(rows).saturating_sub(1).max(1);
    let surplus = lines.len().saturating_sub(room).min(recent.len());
    lines.truncate(lines.len() - surplus);
    let mut frame = erase(state);
    for line in &lines {
        frame.push_str(line);
        frame.push('\n');
    }
    write(&frame);
    state.drawn = lines.len();
}

/// One write for a whole frame, so the terminal never shows half of one.
fn write(frame: &str) {
    let mut err = std::io::stderr().lock();
    // A terminal that went away: nothing to show progress on, the rollout goes on.
    let _ = err.write_all(frame.as_bytes()).and_then(|()| err.flush());
}
