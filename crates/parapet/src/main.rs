//! `parapet`: the server (`parapet serve`), the command-line client and the offline tools.

use clap::Parser;

mod cli;
mod platform_secrets;
mod self_backup;
mod serve;
mod syslog;

/// mimalloc instead of glibc malloc: the server allocates many small, short-lived buffers per
/// request (JSON, base64, audit records), where glibc's malloc spent a quarter of the CPU of a
/// key-service request (perf, BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parapet: the operational-security control plane for a cloud service provider (ITU-T X.1642).
#[derive(Debug, Parser)]
#[command(
    name = "parapet",
    version,
    about = "Parapet: the operational-security control plane of a cloud service provider (ITU-T X.1642)",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the Parapet server (API, console, background jobs).
    Serve(Box<serve::ServeArgs>),
    /// Bring the server's own state (database and key files) back from a backup that
    /// `serve --backup-repo` made, into an empty data directory or PostgreSQL database.
    RestoreServer(self_backup::RestoreServerArgs),
    #[command(flatten)]
    Client(Box<cli::ClientCommand>),
}

/// The command-line tools (backups above all, whose pipeline frees buffers of several MiB)
/// return freed memory to the system at once instead of after mimalloc's purge delay, and commit
/// arena memory as it is used: a 1 GiB backup's peak RSS goes from 269 to 99 MiB (restic: 138).
/// The server keeps the defaults, which are faster.
#[allow(unsafe_code)]
fn return_memory_promptly() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; both options are
    // read when memory is purged or an arena is reserved, and take any value.
    // The bindings lack these two constants: their values in `mi_option_e` of mimalloc.h (the
    // same in mimalloc 2 and 3).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
}

/// mimalloc reads its options from the environment when it starts, before `main`: set later
/// ([`return_memory_promptly`]), they come too late for its first arena, and a 1 GiB backup's
/// peak RSS stays ~55% higher (debug build: 172 MiB against 110 MiB with the options in the
/// environment). So the command-line tools execute themselves again, once, with the options in
/// the environment (a millisecond next to a backup; the process id, arguments, standard streams
/// and the rest of the environment are kept). Options the user set are respected; if the exec
/// fails, the run goes on with the options set at run time.
fn with_allocator_options_from_start() {
    const OPTIONS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "0"),
    ];
    if OPTIONS.iter().any(|(k, _)| std::env::var_os(k).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(args).envs(OPTIONS);
    // Returns only if the exec failed.
    let _ = std::os::unix::process::CommandExt::exec(&mut cmd);
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        with_allocator_options_from_start();
        return_memory_promptly();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::RestoreServer(a) => self_backup::restore_server(a).await,
            Command::Client(cmd) => cli::run(*cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            // Keep it to one line even when a cause spans several (e.g. TOML parse errors).
            let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
