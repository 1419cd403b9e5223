fn main() {
    println!("decnetd");
}
