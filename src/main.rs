fn main() {
    println!("isc-ledger: under construction");
}
