fn main() -> std::process::ExitCode {
    mlld_registry::cli::main()
}
