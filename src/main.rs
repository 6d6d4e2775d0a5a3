fn main() {
    std::process::exit(kairos::main());
}
