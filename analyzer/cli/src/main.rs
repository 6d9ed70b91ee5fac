//! `canary`: progressive-delivery canary analysis. See `canary --help`.

fn main() -> std::process::ExitCode {
    canary::run()
}
