import Foundation

/// The settings file every command reads (`WAITLIST_CONFIG`, by default `/etc/waitlist/waitlist.env`
/// when it exists): `KEY=value` lines, so that the instructor's `waitlist open` in a shell sees the
/// same database and relay as the service. The environment wins over the file.
///
/// A line is `KEY=value`, optionally after `export `; the value may be quoted with `"` or `'`
/// (the quotes are removed; nothing is expanded). Blank lines and lines starting with `#` are
/// skipped. Anything else is an error naming the file and the line.
///
/// Not swift-configuration's `EnvironmentVariablesProvider(environmentFilePath:)`: its parser (1.4.0)
/// skips a line it cannot read without a word, keeps quotes in values and does not know `export `,
/// where the same file is read by systemd (`EnvironmentFile=`) and sourced by shells; a mistyped
/// line here stops the command with the file and the line named, rather than leaving a setting
/// silently at its default.
public enum ConfigFile {
    /// Where the file is looked for when `WAITLIST_CONFIG` is not set.
    public static let defaultPath = "/etc/waitlist/waitlist.env"

    /// The process environment with the settings file's values under it.
    ///
    /// - Parameter defaultPath: the file read when `WAITLIST_CONFIG` is not set (tests point it elsewhere).
    public static func environment(
        merging environment: [String: String], defaultPath: String = defaultPath
    ) throws(SettingsError) -> [String: String] {
        let named = environment["WAITLIST_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        let path = named ?? defaultPath
        guard FileManager.default.fileExists(atPath: path) else {
            if named != nil { throw SettingsError(variable: "WAITLIST_CONFIG", message: "names \(path), which does not exist") }
            return environment
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw SettingsError(sentence: "The settings file \(path) cannot be read (check its permissions).")
        }
        return try parse(text, path: path).merging(environment) { _, fromEnvironment in fromEnvironment }
    }

    /// The `KEY=value` pairs of a settings file's text.
    static func parse(_ text: String, path: String) throws(SettingsError) -> [String: String] {
        var values: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else {
                throw SettingsError(sentence: "\(path), line \(index + 1): expected KEY=value.")
            }
            let key = String(line[..<equals]).trimmingCharacters(in: .whitespaces)
            guard let first = key.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic),
                key.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) })
            else {
                throw SettingsError(sentence: "\(path), line \(index + 1): \"\(key)\" is not a variable name.")
            }
            var value = String(line[line.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }
}
