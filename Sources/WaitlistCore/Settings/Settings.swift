import Foundation
import Logging

/// Every setting the service reads, typed, with the contract's defaults.
///
/// Read once from the environment by ``Settings/init(environment:)``; every command and the server
/// take their settings from here, so nothing else looks at the environment.
public struct Settings: Sendable {
    /// The SQLite file (`WAITLIST_DATABASE`).
    public var databasePath: String
    /// The public address used in every mailed link (`WAITLIST_BASE_URL`), without a trailing slash.
    public var baseURL: String
    /// The SMTP relay (`WAITLIST_SMTP_URL`); `nil` means mail is written as files into ``mailDirectory``.
    public var smtp: SMTPConfiguration?
    /// Where the file transport writes (`WAITLIST_MAIL_DIR`).
    public var mailDirectory: String
    /// The From header and envelope sender (`WAITLIST_MAIL_FROM`).
    public var mailFrom: Mailbox
    /// Signup attempts allowed per client address (`WAITLIST_SIGNUP_RATE_LIMIT`); `nil` is `off`.
    public var signupRateLimit: Rate?
    /// Proxies whose `X-Forwarded-For` is believed (`WAITLIST_TRUSTED_PROXIES`).
    public var trustedProxies: [String]
    /// Origins allowed to post the JSON API from a browser (`WAITLIST_ALLOWED_ORIGINS`).
    public var allowedOrigins: [String]
    /// Parallel SMTP connections (`WAITLIST_SEND_CONCURRENCY`).
    public var sendConcurrency: Int
    /// Most messages per second over all connections (`WAITLIST_SEND_RATE`); `nil` is `off`.
    public var sendRate: Rate?
    /// Seconds a sender holds the sending role without renewing it (`WAITLIST_SEND_LEASE`): how
    /// long others wait before they take over from a sender that died or froze.
    public var sendLease: TimeInterval
    /// The school's privacy notice, linked under the form (`WAITLIST_PRIVACY_URL`).
    public var privacyURL: String?
    /// Where `/metrics` listens (`WAITLIST_METRICS_ADDRESS`, `host:port`); `nil`: nowhere.
    public var metricsAddress: (host: String, port: Int)?
    /// The log level (`WAITLIST_LOG_LEVEL`).
    public var logLevel: Logger.Level
    /// A folder of static files (styles, scripts, icons) to serve instead of the built-in ones
    /// (`WAITLIST_PUBLIC_DIR`); `nil`: the copy of `Public/` in the resource bundle.
    public var publicDirectory: String?
    /// Where bounces come back to (`WAITLIST_BOUNCE_ADDRESS`): each message's envelope sender is
    /// then this address with a signed tag; `nil`: the envelope sender is the From address.
    public var bounceAddress: BounceAddress?
    /// The keys every message is signed with, once each (`WAITLIST_DKIM_KEYS`); empty: none.
    public var dkimKeys: [DKIMKeyEntry] = []
    /// The signatures' domain as set (`WAITLIST_DKIM_DOMAIN`); `nil`: the From address's domain.
    public var dkimDomainSetting: String?

    /// The signatures' `d=`: `WAITLIST_DKIM_DOMAIN`, or the domain of `WAITLIST_MAIL_FROM`.
    public var dkimDomain: String { dkimDomainSetting ?? mailFromDomain }

    /// Settings with every default of the contract.
    public init() {
        self.databasePath = "waitlist.sqlite"
        self.baseURL = "http://127.0.0.1:8080"
        self.smtp = nil
        self.mailDirectory = "mail"
        self.mailFrom = Mailbox(displayName: "Waitlist", address: "waitlist@localhost")
        self.signupRateLimit = Rate(count: 20, per: .hour)
        self.trustedProxies = []
        self.allowedOrigins = []
        self.sendConcurrency = 4
        self.sendRate = nil
        self.sendLease = 45
        self.metricsAddress = nil
        self.privacyURL = nil
        self.logLevel = .info
        self.publicDirectory = nil
        self.bounceAddress = nil
    }

    /// Reads the settings from environment variables, keeping the default for each one unset or empty.
    ///
    /// - Throws: ``SettingsError`` naming the variable and what is wrong with its value.
    public init(environment: [String: String]) throws(SettingsError) {
        self.init()
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        if let path = value("WAITLIST_DATABASE") { databasePath = path }
        if let url = value("WAITLIST_BASE_URL") {
            guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme.lowercased()),
                parsed.host != nil, parsed.query == nil
            else {
                throw SettingsError(
                    variable: "WAITLIST_BASE_URL", message: "must be an http:// or https:// address such as https://waitlist.example.org")
            }
            baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let url = value("WAITLIST_SMTP_URL") {
            do {
                // A slow relay holds up one lane for 30 s at most; the sending role is renewed
                // meanwhile, so no other sender takes the message over.
                smtp = try SMTPConfiguration(url: url, caFile: value("WAITLIST_SMTP_CA_FILE"), messageTimeout: .seconds(30))
            } catch {
                throw SettingsError(sentence: error.description)
            }
        }
        if let directory = value("WAITLIST_MAIL_DIR") { mailDirectory = directory }
        if let from = value("WAITLIST_MAIL_FROM") {
            guard let mailbox = Mailbox(parsing: from) else {
                throw SettingsError(
                    variable: "WAITLIST_MAIL_FROM", message: "must look like `Name <address@example.org>` or `address@example.org`")
            }
            mailFrom = mailbox
        }
        if let limit = value("WAITLIST_SIGNUP_RATE_LIMIT") {
            signupRateLimit = try Rate.parse(limit, variable: "WAITLIST_SIGNUP_RATE_LIMIT")
        }
        if let proxies = value("WAITLIST_TRUSTED_PROXIES") { trustedProxies = Self.list(proxies) }
        if let origins = value("WAITLIST_ALLOWED_ORIGINS") {
            allowedOrigins = Self.list(origins)
            if let bad = allowedOrigins.first(where: { !Self.isOrigin($0) }) {
                throw SettingsError(
                    variable: "WAITLIST_ALLOWED_ORIGINS",
                    message: "must list origins such as `https://school.example` (scheme, host, optional port; no path), not `\(bad)`")
            }
        }
        if let concurrency = value("WAITLIST_SEND_CONCURRENCY") {
            guard let count = Int(concurrency), (1...64).contains(count) else {
                throw SettingsError(variable: "WAITLIST_SEND_CONCURRENCY", message: "must be a whole number from 1 to 64")
            }
            sendConcurrency = count
        }
        if let rate = value("WAITLIST_SEND_RATE") {
            sendRate = try Rate.parse(rate, variable: "WAITLIST_SEND_RATE")
        }
        if let lease = value("WAITLIST_SEND_LEASE") {
            guard let seconds = Double(lease), seconds.isFinite, (1...3600).contains(seconds) else {
                throw SettingsError(variable: "WAITLIST_SEND_LEASE", message: "must be a number of seconds from 1 to 3600")
            }
            sendLease = seconds
        }
        if let url = value("WAITLIST_PRIVACY_URL") {
            guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme.lowercased()),
                parsed.host != nil
            else {
                throw SettingsError(
                    variable: "WAITLIST_PRIVACY_URL", message: "must be an http:// or https:// address of the privacy notice")
            }
            privacyURL = url
        }
        if let address = value("WAITLIST_METRICS_ADDRESS") {
            guard let parsed = Self.hostAndPort(address) else {
                throw SettingsError(
                    variable: "WAITLIST_METRICS_ADDRESS", message: "must be host:port, such as 127.0.0.1:9464 or [::1]:9464")
            }
            metricsAddress = parsed
        }
        if let directory = value("WAITLIST_PUBLIC_DIR") { publicDirectory = directory }
        if let address = value("WAITLIST_BOUNCE_ADDRESS") {
            guard let parsed = BounceAddress(address) else {
                throw SettingsError(
                    variable: "WAITLIST_BOUNCE_ADDRESS", message: "must be an address without a + such as bounces@school.example")
            }
            bounceAddress = parsed
        }
        if let keys = value("WAITLIST_DKIM_KEYS") { dkimKeys = try Self.parseDKIMKeys(keys) }
        if let domain = value("WAITLIST_DKIM_DOMAIN") {
            guard domain.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ";") }), !domain.contains("@") else {
                throw SettingsError(variable: "WAITLIST_DKIM_DOMAIN", message: "must be a domain name such as school.example")
            }
            dkimDomainSetting = domain.lowercased()
        }
        if let level = value("WAITLIST_LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw SettingsError(
                    variable: "WAITLIST_LOG_LEVEL", message: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = parsed
        }
    }

    /// The host name of ``baseURL``, used for Message-IDs and the SMTP greeting.
    public var publicHost: String {
        URL(string: baseURL)?.host ?? "localhost"
    }

    private static func list(_ value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `127.0.0.1:9464`, `localhost:9464` or `[::1]:9464`; `nil` for anything else.
    static func hostAndPort(_ value: String) -> (host: String, port: Int)? {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { return nil }
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:".contains($0) }), host.allSatisfy(\.isASCII) else {
            return nil
        }
        return (host, port)
    }
}

/// A setting's value that cannot be used; its description is one sentence for the operator.
public struct SettingsError: Error, CustomStringConvertible, Sendable {
    /// One sentence naming the variable and what is wrong with it.
    public var description: String

    init(variable: String, message: String) {
        self.description = "\(variable) \(message)."
    }

    init(sentence: String) {
        self.description = sentence
    }
}

/// A number of events per second, minute or hour, written `N/s`, `N/m` or `N/h`.
public struct Rate: Sendable, Equatable, CustomStringConvertible {
    /// The unit of time a ``Rate`` counts over.
    public enum Period: String, Sendable {
        case second = "s"
        case minute = "m"
        case hour = "h"

        /// The period's length.
        public var seconds: Double {
            switch self {
            case .second: 1
            case .minute: 60
            case .hour: 3600
            }
        }
    }

    public var count: Int
    public var per: Period

    public init(count: Int, per: Period) {
        self.count = count
        self.per = per
    }

    /// Events per second.
    public var perSecond: Double { Double(count) / per.seconds }

    public var description: String { "\(count)/\(per.rawValue)" }

    /// Parses `N/s`, `N/m`, `N/h`; `off` gives `nil`.
    static func parse(_ text: String, variable: String) throws(SettingsError) -> Rate? {
        if text.lowercased() == "off" { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(parts[0]), count > 0, let period = Period(rawValue: parts[1].lowercased()) else {
            throw SettingsError(
                variable: variable, message: "must be N/s, N/m, N/h with N a positive whole number, or off (got \"\(text)\")")
        }
        return Rate(count: count, per: period)
    }
}

extension Mailbox {
    /// Parses `Name <address>` or a bare `address`, as written in `WAITLIST_MAIL_FROM`.
    init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let open = trimmed.lastIndex(of: "<"), trimmed.hasSuffix(">") {
            let address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 { name = String(name.dropFirst().dropLast()) }
            guard EmailAddress.isValidSender(address) else { return nil }
            self.init(displayName: name.isEmpty ? nil : name, address: address)
        } else {
            guard EmailAddress.isValidSender(trimmed) else { return nil }
            self.init(displayName: nil, address: trimmed)
        }
    }
}
