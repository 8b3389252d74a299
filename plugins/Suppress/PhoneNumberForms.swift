/// The forms one WhatsApp user's mobile number may take. WhatsApp knows a user by the number they
/// registered with (their WhatsApp id, the `from` of their inbound messages), which for Brazil and
/// Mexico may not be the number dialled today:
///
/// - Brazil added a ninth digit, 9, in front of every mobile number (2012–2016): a user registered
///   before writes from `55` + area + 8 digits while upstream sends to `55` + area + `9` + 8 digits.
///   Only a former mobile number (its 8 digits starting 6–9) has the two forms; an 8-digit number
///   starting 2–5 is a landline, another subscriber than the mobile with a 9 before it.
/// - Mexico dropped the `1` after `52` that mobile numbers were dialled with from abroad (2019–2020):
///   `52` + 10 digits and `521` + 10 digits are the same phone (no Mexican area code starts with 1).
///
/// An opt-out listed in one form applies to a message sent to the other (`OptOutList`).
enum PhoneNumberForms {
    /// `number` (`+digits`, as `MessageValidator.normalisePhone` writes it) and the other form of
    /// the same phone, if it has one.
    static func of(_ number: String) -> [String] {
        let digits = Array(number.utf8.dropFirst())
        guard number.utf8.first == UInt8(ascii: "+"), digits.allSatisfy(isDigit) else { return [number] }
        guard let other = other(digits) else { return [number] }
        return [number, "+" + String(decoding: other, as: UTF8.self)]
    }

    private static func other(_ digits: [UInt8]) -> [UInt8]? {
        let (brazil, mexico) = (Array("55".utf8), Array("52".utf8))
        if digits.starts(with: brazil), digits.count == 13 || digits.count == 12, isAreaDigit(digits[2]), isAreaDigit(digits[3]) {
            let area = digits[..<4]
            if digits.count == 13, digits[4] == UInt8(ascii: "9"), isFormerMobileStart(digits[5]) { return Array(area + digits[5...]) }
            if digits.count == 12, isFormerMobileStart(digits[4]) { return Array(area + [UInt8(ascii: "9")] + digits[4...]) }
        }
        if digits.starts(with: mexico) {
            if digits.count == 12, isAreaStart(digits[2]) { return mexico + [UInt8(ascii: "1")] + digits[2...] }
            if digits.count == 13, digits[2] == UInt8(ascii: "1"), isAreaStart(digits[3]) { return mexico + digits[3...] }
        }
        return nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    /// Brazilian area codes are two digits 1–9 (11 São Paulo … 99).
    private static func isAreaDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(byte) }
    /// Brazil's 8-digit mobile numbers started with 6, 7, 8 or 9.
    private static func isFormerMobileStart(_ byte: UInt8) -> Bool { (UInt8(ascii: "6")...UInt8(ascii: "9")).contains(byte) }
    /// Mexican area codes start with 2–9.
    private static func isAreaStart(_ byte: UInt8) -> Bool { (UInt8(ascii: "2")...UInt8(ascii: "9")).contains(byte) }
}
