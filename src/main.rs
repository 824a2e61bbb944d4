fn main() -> std::process::ExitCode {
    stevedore::cli_main()
}
