//! The live view on a real pseudo-terminal: `canary demo` (a real rollout, in one process)
//! and `canary status --watch` run under util-linux `script`, which gives them a pty of the
//! size set with `stty`; what they wrote is replayed through a terminal emulator (`vt100`)
//! and the screen is looked at frame by frame, as a person would see it.
//!
//! Captures of the screens go to `target/tmp/live-view-*.txt` (docs/live-view.md shows them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::root;

/// The criteria of the demo's policy.
const CRITERIA: [&str; 4] = [
    "errors/slo",
    "errors/baseline",
    "latency/slo",
    "latency/baseline",
];

/// util-linux `script`, which runs a command on a new pseudo-terminal.
fn script() -> PathBuf {
    let path = PathBuf::from("/usr/bin/script");
    assert!(
        path.exists(),
        "the live view tests need util-linux `script` (apt-get install util-linux)"
    );
    path
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What a command wrote to its terminal, and how it exited.
struct OnTerminal {
    code: i32,
    bytes: Vec<u8>,
    cols: u16,
    rows: u16,
}

/// Runs `canary ARGS…` on a pseudo-terminal `cols` wide, with `env` set (and `CI`, `NO_COLOR`
/// unset unless given).
fn on_terminal(cols: u16, rows: u16, env: &[(&str, &str)], args: &[&str]) -> OnTerminal {
    on_terminal_then(cols, rows, "", env, args)
}

/// [`on_terminal`], with `meanwhile` (shell, run in the background) started just before
/// canary: e.g. a resize of the terminal a few seconds in.
fn on_terminal_then(
    cols: u16,
    rows: u16,
    meanwhile: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> OnTerminal {
    let mut line = format!(
        "stty cols {cols} rows {rows}; {meanwhile} exec {}",
        quote(env!("CARGO_BIN_EXE_canary"))
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut command = Command::new(script());
    command
        .args([
            "--quiet",
            "--flush",
            "--return",
            "--command",
            &line,
            "/dev/null",
        ])
        .current_dir(root())
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run canary under script");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("panicked"), "canary panicked:\n{text}");
    OnTerminal {
        code: output.status.code().unwrap_or(-1),
        bytes: output.stdout,
        cols,
        rows,
    }
}

/// A frame of the live view as the terminal showed it: its rows, and whether any wrapped.
struct Frame {
    rows: Vec<String>,
    wrapped: Vec<usize>,
}

/// The terminal replayed: every frame of the live view (each one as it stood just before
/// the next erased it), and the screen at the end.
struct Replay {
    frames: Vec<Frame>,
    screen: Vec<String>,
    wrapped_at_end: Vec<bool>,
}

/// Feeds the output to a terminal emulator of the same size, stopping before each erase
/// of the view (`ESC [ n A` after a carriage return) to look at the n rows it erases.
fn replay(run: &OnTerminal) -> Replay {
    replay_resized(run, None)
}

/// The marker the resize test writes (a window title) just before it resizes the terminal.
const RESIZE_MARKER: &[u8] = b"\x1b]2;resize\x07";

/// [`replay`], with the emulator resized to `resize` (cols, rows) where the output holds
/// [`RESIZE_MARKER`], as the terminal was. Like xterm, the emulator does not reflow the
/// rows already shown.
fn replay_resized(run: &OnTerminal, resize: Option<(u16, u16)>) -> Replay {
    let size = |n: u16| std::num::NonZeroU16::new(n).expect("a terminal has rows and columns");
    let mut parser = vt100::Parser::new(size(run.rows), size(run.cols), 0);
    let bytes = &run.bytes;
    let resize_at = resize.and_then(|_| find(bytes, RESIZE_MARKER));
    let feed = |parser: &mut vt100::Parser, from: usize, to: usize| match (resize_at, resize) {
        (Some(at), Some((cols, rows))) if from <= at && at < to => {
            parser.process(&bytes[from..at]);
            parser.set_size(size(rows), size(cols));
            parser.process(&bytes[at..to]);
        }
        _ => parser.process(&bytes[from..to]),
    };
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut at = 0;
    while let Some(offset) = find(&bytes[at..], b"\r\x1b[") {
        let start = at + offset;
        let digits: Vec<u8> = bytes[start + 3..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        let is_erase = !digits.is_empty() && bytes.get(start + 3 + digits.len()) == Some(&b'A');
        if is_erase {
            feed(&mut parser, fed, start);
            fed = start;
            let n: u16 = String::from_utf8_lossy(&digits).parse().unwrap();
            let screen = parser.screen();
            let (cursor, _) = screen.cursor_position();
            let first = cursor.saturating_sub(n);
            let contents: Vec<String> = screen.rows(0, screen.size().1.get()).collect();
            frames.push(Frame {
                rows: contents[usize::from(first)..usize::from(cursor)].to_vec(),
                wrapped: (first..cursor)
                    .filter(|&row| screen.row_wrapped(row))
                    .map(usize::from)
                    .collect(),
            });
        }
        at = start + 3;
    }
    feed(&mut parser, fed, bytes.len());
    let screen = parser.screen();
    let (rows, cols) = (screen.size().0.get(), screen.size().1.get());
    Replay {
        frames,
        screen: screen.rows(0, cols).collect(),
        wrapped_at_end: (0..rows).map(|row| screen.row_wrapped(row)).collect(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every criterion on a line of its own, after its mark.
fn assert_every_criterion_shown(rows: &[String], context: &str) {
    for name in CRITERIA {
        assert!(
            rows.iter().any(|row| {
                let mut words = row.split_whitespace();
                matches!(words.next(), Some("✔" | "✖" | "…" | "!")) && words.next() == Some(name)
            }),
            "{name} has no line of its own in {context}:\n{}",
            rows.join("\n")
        );
    }
}

/// Writes a capture under target/ for the docs.
fn capture(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
}

/// The screen's text without the blank rows at its end.
fn trimmed(rows: &[String]) -> String {
    let last = rows.iter().rposition(|r| !r.trim().is_empty()).unwrap_or(0);
    rows[..=last]
        .iter()
        .map(|r| r.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A healthy demo at `cols` columns: frames that fit, every criterion shown, the summary on
/// a row of its own below the view's last frame.
fn demo_fits(cols: u16, env: &[(&str, &str)]) -> OnTerminal {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let run = on_terminal(
        cols,
        100,
        env,
        &["demo", "--step", "3s", "--rps", "300", "--dir", dir_arg],
    );
    let text = String::from_utf8_lossy(&run.bytes).into_owned();
    assert_eq!(run.code, 0, "{text}");
    let replay = replay(&run);
    let frames: Vec<&Frame> = replay
        .frames
        .iter()
        .filter(|f| f.rows.first().is_some_and(|r| r.starts_with("demo · ")))
        .collect();
    assert!(
        frames.len() >= 5,
        "the view was redrawn in place a few times ({} frames):\n{text}",
        frames.len()
    );
    for frame in &frames {
        assert!(
            frame.wrapped.is_empty(),
            "a line of the view is wider than {cols} columns:\n{}",
            frame.rows.join("\n")
        );
    }
    // "step k/N" counts the analysed steps right through the rollout: 1/3, 2/3, 3/3 in
    // order, each shown, never another total (issue 12 item 8 found "step 1 of 1" once).
    let mut steps: Vec<(u32, u32)> = Vec::new();
    for frame in &frames {
        let Some(at) = frame.rows[0].find("step ") else {
            continue;
        };
        let word = frame.rows[0][at + 5..]
            .split(' ')
            .next()
            .unwrap_or_default();
        let (k, n) = word
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
            .unwrap_or_else(|| panic!("a step count like 2/3: {:?}", frame.rows[0]));
        assert_eq!(n, 3, "the demo has 3 analysed steps: {:?}", frame.rows[0]);
        if steps.last() != Some(&(k, n)) {
            steps.push((k, n));
        }
    }
    assert_eq!(
        steps,
        [(1, 3), (2, 3), (3, 3)],
        "the steps, in the order shown"
    );
    // The view of a step with readings shows every criterion.
    let mid = frames
        .iter()
        .rev()
        .find(|f| f.rows[0].contains("step 2/3") && f.rows.iter().any(|r| r.contains("errors/slo")))
        .unwrap_or_else(|| panic!("no frame of step 2 with its criteria:\n{text}"));
    assert_every_criterion_shown(&mid.rows, "a frame of step 2");
    assert!(
        mid.rows
            .iter()
            .any(|r| r.contains("weight 25 %") && r.contains("read")),
        "the weight set and read back:\n{}",
        mid.rows.join("\n")
    );
    // The end: the last frame stays, the summary starts on a row of its own below it.
    let screen = &replay.screen;
    let title = screen
        .iter()
        .rposition(|r| r.starts_with("demo · "))
        .unwrap_or_else(|| panic!("the last frame stays on the screen:\n{}", trimmed(screen)));
    assert!(screen[title].contains("promoted"), "{}", trimmed(screen));
    let summary = screen
        .iter()
        .position(|r| r.starts_with("rollout demo: PASS (exit 0)"))
        .unwrap_or_else(|| panic!("the summary starts a row of its own:\n{}", trimmed(screen)));
    assert!(summary > title, "{}", trimmed(screen));
    let last_frame = &screen[title..summary];
    assert_every_criterion_shown(last_frame, "the last frame");
    assert!(
        !replay.wrapped_at_end[title..summary].iter().any(|w| *w),
        "the last frame fits:\n{}",
        last_frame.join("\n")
    );
    // The summary below it fits too: no row wrapped by the terminal (a word cut in two, a
    // reason run into the name and verdict columns); each entry is broken at its words,
    // and every word of every criterion's reason is there, in order.
    let load = screen
        .iter()
        .position(|r| r.starts_with("load: "))
        .unwrap_or_else(|| {
            panic!(
                "the demo's load line ends the summary:\n{}",
                trimmed(screen)
            )
        });
    let summary_rows = &screen[summary..load];
    assert!(
        !replay.wrapped_at_end[summary..load].iter().any(|w| *w),
        "a summary line is wider than {cols} columns and wrapped:\n{}",
        trimmed(summary_rows)
    );
    let shown: Vec<&str> = summary_rows
        .iter()
        .flat_map(|r| r.split_whitespace())
        .collect();
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("the demo's report"),
    )
    .expect("the report is JSON");
    for check in report["checks"].as_array().expect("checks") {
        let reason: Vec<&str> = check["reason"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect();
        assert!(
            shown.windows(reason.len()).any(|w| w == reason.as_slice()),
            "{}'s reason is not whole in the summary:\n{}",
            check["name"],
            trimmed(summary_rows)
        );
    }
    capture(
        &format!("live-view-{cols}.txt"),
        &format!(
            "--- during step 2, {cols} columns\n{}--- at the end\n{}",
            trimmed(&mid.rows),
            trimmed(screen)
        ),
    );
    run
}

#[test]
fn the_live_view_fits_80_columns_in_colour() {
    let run = demo_fits(80, &[]);
    let text = String::from_utf8_lossy(&run.bytes);
    assert!(
        text.contains("\x1b[32m"),
        "passing criteria are green:\n{text}"
    );
}

#[test]
fn the_live_view_fits_160_columns_without_colour_when_no_color_is_set() {
    let run = demo_fits(160, &[("NO_COLOR", "1")]);
    let text = String::from_utf8_lossy(&run.bytes);
    // Redrawn in place (cursor movement), but no colour or other attribute.
    assert!(text.contains("\x1b[J"), "{text}");
    assert!(!has_sgr(&text), "colour despite NO_COLOR:\n{text:?}");
}

/// Whether `text` holds an SGR sequence (`ESC [ … m`: colour, bold).
fn has_sgr(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|seq| {
        seq.strip_prefix('[')
            .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'))
            .is_some_and(|rest| rest.starts_with('m'))
    })
}

/// A terminal made narrower mid-rollout (160 to 80 columns, as a window is resized): the
/// frames drawn after it fit the new width, and the screen at the end holds one frame,
/// the last, with no stale rows of the earlier ones above or below it.
#[test]
fn a_resize_mid_rollout_leaves_no_stale_frame_lines() {
    let dir = tempfile::tempdir().unwrap();
    // In the background, 5 s in (step 2 of the demo's 3 s steps): the marker, then the
    // resize (the kernel sends canary SIGWINCH). `stty` acts on its standard input, which a
    // background job has as /dev/null: hence /dev/tty.
    let resize = "(sleep 5; printf '\\033]2;resize\\007'; stty cols 80 rows 40 < /dev/tty) &";
    let run = on_terminal_then(
        160,
        40,
        resize,
        &[("NO_COLOR", "1")],
        &[
            "demo",
            "--step",
            "3s",
            "--rps",
            "300",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&run.bytes).into_owned();
    assert_eq!(run.code, 0, "{text}");
    let resized_at =
        find(&run.bytes, RESIZE_MARKER).unwrap_or_else(|| panic!("no resize happened:\n{text}"));
    assert!(
        find(&run.bytes[resized_at..], b"\r\x1b[").is_some(),
        "the view was redrawn after the resize:\n{text}"
    );
    let replay = replay_resized(&run, Some((80, 40)));
    let frames: Vec<&Frame> = replay
        .frames
        .iter()
        .filter(|f| f.rows.first().is_some_and(|r| r.starts_with("demo · ")))
        .collect();
    let last = frames.last().expect("frames");
    assert!(
        last.wrapped.is_empty(),
        "the last frame is wider than 80 columns:\n{}",
        last.rows.join("\n")
    );
    let screen = &replay.screen;
    let summary = screen
        .iter()
        .position(|r| r.starts_with("rollout demo: PASS (exit 0)"))
        .unwrap_or_else(|| panic!("the summary:\n{}", trimmed(screen)));
    let titles: Vec<usize> = screen
        .iter()
        .enumerate()
        .filter(|(_, r)| r.starts_with("demo · "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        titles.len(),
        1,
        "one frame on the screen, no stale one:\n{}",
        trimmed(screen)
    );
    let view = &screen[titles[0]..summary];
    assert_every_criterion_shown(view, "the last frame after the resize");
    for name in CRITERIA {
        let shown = screen[..summary]
            .iter()
            .filter(|r| {
                let mut words = r.split_whitespace();
                matches!(words.next(), Some("✔" | "✖" | "…" | "!")) && words.next() == Some(name)
            })
            .count();
        assert_eq!(shown, 1, "{name} shown {shown} times:\n{}", trimmed(screen));
    }
    capture("live-view-resized.txt", &trimmed(screen));
}

#[test]
fn a_dumb_terminal_gets_the_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let run = on_terminal(
        80,
        50,
        &[("TERM", "dumb")],
        &[
            "demo",
            "--step",
            "2s",
            "--rps",
            "300",
            "--fault",
            "errors=5%",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&run.bytes);
    assert_eq!(run.code, 1, "{text}");
    assert!(
        !text.contains('\x1b'),
        "escape codes on a dumb terminal:\n{text:?}"
    );
    assert!(text.contains(" demo tick: "), "one line per tick:\n{text}");
    assert!(text.contains(" demo rolled-back: "), "{text}");
}

/// Starts a demo in the background (no terminal); its policy file once written.
fn background_demo(dir: &Path, fault: Option<&str>) -> (std::process::Child, PathBuf) {
    let mut args = vec![
        "demo".to_owned(),
        "--step".to_owned(),
        "3s".to_owned(),
        "--rps".to_owned(),
        "300".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
    ];
    if let Some(fault) = fault {
        args.extend(["--fault".to_owned(), fault.to_owned()]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(&args)
        .current_dir(root())
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let policy = dir.join("demo-policy.yaml");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !policy.exists() {
        assert!(Instant::now() < deadline, "the demo wrote no policy");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, policy)
}

/// Kills the demo if the test ends early.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_watch_shows_the_live_view_of_a_rollout_run_elsewhere_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, policy) = background_demo(dir.path(), None);
    let mut demo = Reaped(demo);
    let state = dir.path().join("state");
    let run = on_terminal(
        80,
        60,
        &[],
        &[
            "status",
            "--watch",
            "--interval",
            "200ms",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&run.bytes).into_owned();
    let demo_code = demo.0.wait().unwrap().code();
    assert_eq!(demo_code, Some(0));
    assert_eq!(run.code, 0, "the rollout's exit code:\n{text}");
    let replay = replay(&run);
    let steps: Vec<&Frame> = replay
        .frames
        .iter()
        .filter(|f| {
            f.rows
                .first()
                .is_some_and(|r| r.starts_with("demo · ") && r.contains("step "))
        })
        .collect();
    assert!(!steps.is_empty(), "frames of the steps:\n{text}");
    for frame in &steps {
        assert!(frame.wrapped.is_empty(), "{}", frame.rows.join("\n"));
        assert!(frame.rows[0].contains("/3"), "{}", frame.rows.join("\n"));
    }
    assert!(
        steps.iter().any(|f| f.rows[0].contains("driven by pid")),
        "the view says which process drives the rollout:\n{text}"
    );
    let with_criteria = steps
        .iter()
        .rev()
        .find(|f| f.rows.iter().any(|r| r.contains("errors/slo")))
        .unwrap_or_else(|| panic!("a frame with the criteria:\n{text}"));
    assert_every_criterion_shown(&with_criteria.rows, "a frame of status --watch");
    assert!(
        replay
            .frames
            .iter()
            .any(|f| f.rows.iter().any(|r| r.contains(" step 1 at 10 %: "))),
        "the view lists the steps the state recorded:\n{text}"
    );
    let screen = &replay.screen;
    let end = screen
        .iter()
        .position(|r| r.starts_with("demo: promoted") && r.contains("(exit 0)"))
        .unwrap_or_else(|| panic!("the outcome on a row of its own:\n{}", trimmed(screen)));
    assert!(
        screen[..end]
            .iter()
            .any(|r| r.starts_with("demo · promoted")),
        "{}",
        trimmed(screen)
    );
    capture("live-view-status-watch-80.txt", &trimmed(screen));
}

#[test]
fn status_watch_in_a_pipeline_prints_changes_and_exits_1_after_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, policy) = background_demo(dir.path(), Some("errors=5%"));
    let mut demo = Reaped(demo);
    let output = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args([
            "status",
            "--watch",
            "--interval",
            "200ms",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(demo.0.wait().unwrap().code(), Some(1));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "{stderr}"
    );
    assert!(stdout.starts_with("demo: rolled back: "), "{stdout}");
    assert!(stdout.trim_end().ends_with("(exit 1)"), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(" demo rolled-back weight 0 %")),
        "a line per change, the last one the rollback:\n{stderr}"
    );
}

#[test]
fn status_watch_refuses_an_interval_out_of_range() {
    let run = crate::util::canary(&[
        "status",
        "--watch",
        "--interval",
        "1ms",
        "--service",
        "demo",
    ]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("from 100ms to 1h"), "{}", run.all());
}
