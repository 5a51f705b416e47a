/// The order in which to try a domain's mail exchangers (RFC 5321 §5.1): by preference, lowest first,
/// and in random order among exchangers of equal preference, to spread the load over them.
///
/// - Parameters:
///   - records: the MX records as the DNS gave them.
///   - shuffle: randomises one group of equal preference in place; tests pass a deterministic one.
/// - Returns: every record of `records`, ordered. Duplicates are kept: removing them is the caller's choice.
public func orderMailExchangers(
    _ records: [MXRecord],
    shuffle: (inout [MXRecord]) -> Void = { $0.shuffle() }
) -> [MXRecord] {
    let groups = Dictionary(grouping: records, by: \.preference)
    var ordered: [MXRecord] = []
    ordered.reserveCapacity(records.count)
    for preference in groups.keys.sorted() {
        var group = groups[preference]!
        if group.count > 1 {
            shuffle(&group)
        }
        ordered.append(contentsOf: group)
    }
    return ordered
}

/// Whether `records` is a null MX (RFC 7505 §3): exactly one MX record, whose exchange is the root
/// name "." (an empty ``MXRecord/exchange``). Such a domain accepts no mail: an SMTP client fails the
/// delivery permanently and must not fall back to the domain's addresses (RFC 7505 §4.1). RFC 7505 has the
/// record's preference be 0; any preference is accepted here, as one MX to the root can mean nothing else.
///
/// A root exchange among other MX records is not a null MX (RFC 7505 §3 forbids mixing them); it names
/// no host, so the delivery engine skips that record and tries the others.
public func isNullMX(_ records: [MXRecord]) -> Bool {
    records.count == 1 && records[0].exchange.isEmpty
}
