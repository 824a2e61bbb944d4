fn main() -> std::process::ExitCode {
    stevedore::cli::main()
}
