import Foundation

/// Where and how to reach the SMTP relay, parsed from `WAITLIST_SMTP_URL`.
///
/// `smtp://[user:pass@]host[:port]` speaks SMTP (port 25 by default) and upgrades with STARTTLS whenever the relay
/// offers it; when credentials are given STARTTLS is required, so a password never crosses the network in clear.
/// `smtps://[user:pass@]host[:port]` speaks TLS from the first byte (port 465 by default). The user and password are
/// percent-decoded; an IPv6 address goes in brackets (`smtp://[::1]:2525`).
///
/// Neither ``description`` nor the type's mirror (`dump`, `String(reflecting:)`) ever shows the password.
public struct SMTPConfiguration: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    /// How the connection to the relay is protected.
    public enum TLSPolicy: Sendable, Equatable {
        /// `smtp://` without credentials: STARTTLS when the relay offers it, plain SMTP otherwise.
        case startTLSWhenOffered
        /// `smtp://` with credentials: STARTTLS, or no delivery at all.
        case startTLSRequired
        /// `smtps://`: TLS from the first byte.
        case implicitTLS
    }

    /// A login for the relay; its description and mirror show the user but never the password.
    public struct Credentials: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
        public let user: String
        public let password: String

        public init(user: String, password: String) {
            self.user = user
            self.password = password
        }

        public var description: String { "\(user):***" }

        public var customMirror: Mirror { Mirror(self, children: ["user": user, "password": "***"]) }
    }

    /// The port an `smtp://` URL without a port uses.
    public static let defaultSMTPPort = 25
    /// The port an `smtps://` URL without a port uses.
    public static let defaultSMTPSPort = 465

    /// `true` for `smtps://` (TLS from the first byte), `false` for `smtp://`.
    public let usesImplicitTLS: Bool
    /// The relay's DNS name or IP address, without the brackets of an IPv6 address.
    public let host: String
    public let port: Int
    /// The login, if the URL has one.
    public let credentials: Credentials?
    /// A PEM bundle of certificates to trust instead of the system's (`WAITLIST_SMTP_CA_FILE`), for a relay with a
    /// private CA.
    public let caFile: String?
    /// How long connecting (TCP and TLS) may take.
    public let connectTimeout: Duration
    /// How long one whole message may take, connecting included.
    public let messageTimeout: Duration

    /// Parses a `WAITLIST_SMTP_URL` value; see the type's documentation for the accepted forms.
    ///
    /// - Parameter caFile: the value of `WAITLIST_SMTP_CA_FILE`, if set; it must name a readable file.
    public init(
        url: String,
        caFile: String? = nil,
        connectTimeout: Duration = .seconds(10),
        messageTimeout: Duration = .seconds(60)
    ) throws(SMTPConfigurationError) {
        let url = url.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let schemeEnd = url.range(of: "://") else { throw .notAnSMTPURL }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        switch scheme {
        case "smtp": usesImplicitTLS = false
        case "smtps": usesImplicitTLS = true
        default: throw .unsupportedScheme(scheme.allSatisfy(\.isLetter) ? scheme : nil)
        }

        // The last `@` ends the credentials, so an unencoded `/`, `?` or `#` in a password still parses as one.
        var rest = url[schemeEnd.upperBound...]
        if let at = rest.lastIndex(of: "@") {
            credentials = try Self.parseCredentials(rest[..<at])
            rest = rest[rest.index(after: at)...]
        } else {
            credentials = nil
        }

        if let pathStart = rest.firstIndex(where: { "/?#".contains($0) }) {
            guard rest[pathStart...] == "/" else { throw .pathOrQuery }
            rest = rest[..<pathStart]
        }
        let (host, portText) = try Self.splitHostAndPort(rest)
        self.host = host
        if let portText {
            let isDigits = !portText.isEmpty && portText.allSatisfy { $0.isASCII && $0.isNumber }
            guard isDigits, let port = Int(portText), (1...65535).contains(port) else { throw .invalidPort }
            self.port = port
        } else {
            port = usesImplicitTLS ? Self.defaultSMTPSPort : Self.defaultSMTPPort
        }

        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw .unreadableCAFile(caFile)
        }
        self.caFile = caFile
        self.connectTimeout = connectTimeout
        self.messageTimeout = messageTimeout
    }

    /// How the connection is protected, following the contract's rules for `WAITLIST_SMTP_URL`.
    public var tlsPolicy: TLSPolicy {
        if usesImplicitTLS { return .implicitTLS }
        return credentials == nil ? .startTLSWhenOffered : .startTLSRequired
    }

    /// The host as it appears in a URL: an IPv6 address in brackets.
    package var hostForURL: String { host.contains(":") ? "[\(host)]" : host }

    /// `smtp://user:***@host:port`, safe for logs.
    public var description: String {
        let login = credentials.map { "\($0)@" } ?? ""
        return "\(usesImplicitTLS ? "smtps" : "smtp")://\(login)\(hostForURL):\(port)"
    }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "url": description, "caFile": caFile as Any, "connectTimeout": connectTimeout,
                "messageTimeout": messageTimeout,
            ]
        )
    }

    // MARK: - Parsing

    /// Splits and percent-decodes `user:pass`; both must be present and be text without control characters.
    private static func parseCredentials(_ userInfo: Substring) throws(SMTPConfigurationError) -> Credentials {
        guard let colon = userInfo.firstIndex(of: ":") else { throw .incompleteCredentials }
        guard let user = userInfo[..<colon].removingPercentEncoding,
            let password = userInfo[userInfo.index(after: colon)...].removingPercentEncoding
        else { throw .invalidCredentials }
        guard !user.isEmpty, !password.isEmpty else { throw .incompleteCredentials }
        guard !(user + password).unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidCredentials
        }
        return Credentials(user: user, password: password)
    }

    /// Splits `host[:port]` or `[ipv6][:port]`; the port text is `nil` when there is no colon.
    private static func splitHostAndPort(_ authority: Substring) throws(SMTPConfigurationError) -> (String, Substring?) {
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidHost }
            let address = String(authority[authority.index(after: authority.startIndex)..<close])
            guard isIPv6Address(address) else { throw .invalidHost }
            let afterBracket = authority[authority.index(after: close)...]
            if afterBracket.isEmpty { return (address, nil) }
            guard afterBracket.hasPrefix(":") else { throw .invalidHost }
            return (address, afterBracket.dropFirst())
        }
        // More than one colon outside brackets is an IPv6 address written without them.
        guard authority.count(where: { $0 == ":" }) <= 1 else { throw .invalidHost }
        let host: Substring
        let port: Substring?
        if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            port = authority[authority.index(after: colon)...]
        } else {
            (host, port) = (authority, nil)
        }
        guard !host.isEmpty else { throw .missingHost }
        let allowedPunctuation: Set<Character> = ["-", ".", "_"]
        guard host.allSatisfy({ !$0.isASCII || $0.isLetter || $0.isNumber || allowedPunctuation.contains($0) }),
            !host.contains(where: { $0.isWhitespace })
        else { throw .invalidHost }
        return (String(host), port)
    }

    /// Whether `text` is a literal IPv6 address (no zone).
    private static func isIPv6Address(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }
}

/// Why a `WAITLIST_SMTP_URL` (or `WAITLIST_SMTP_CA_FILE`) value was refused.
///
/// Each ``description`` is one sentence that quotes no part of the URL after the scheme, so a
/// mistyped URL cannot leak its password into a log.
public enum SMTPConfigurationError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    case notAnSMTPURL
    /// The scheme, when it looks like one (letters only).
    case unsupportedScheme(String?)
    case missingHost
    case invalidHost
    case invalidPort
    case pathOrQuery
    case incompleteCredentials
    case invalidCredentials
    case unreadableCAFile(String)

    public var description: String {
        switch self {
        case .notAnSMTPURL:
            "WAITLIST_SMTP_URL must look like smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port]."
        case .unsupportedScheme(let scheme?):
            "WAITLIST_SMTP_URL uses the scheme \"\(scheme)\", but only smtp:// and smtps:// are supported."
        case .unsupportedScheme(nil):
            "WAITLIST_SMTP_URL has an unsupported scheme; only smtp:// and smtps:// are supported."
        case .missingHost:
            "WAITLIST_SMTP_URL names no host."
        case .invalidHost:
            "WAITLIST_SMTP_URL has an invalid host; use a DNS name, an IPv4 address, or an IPv6 address in brackets."
        case .invalidPort:
            "WAITLIST_SMTP_URL has a port that is not a number from 1 to 65535."
        case .pathOrQuery:
            "WAITLIST_SMTP_URL must end after host[:port]; a path, query or fragment is not allowed."
        case .incompleteCredentials:
            "WAITLIST_SMTP_URL must give both a user and a password (user:pass@host) or neither."
        case .invalidCredentials:
            "WAITLIST_SMTP_URL has a user or password that is not valid percent-encoded text; encode @ as %40 and : as %3A."
        case .unreadableCAFile(let path):
            "WAITLIST_SMTP_CA_FILE names a file that cannot be read: \(path)."
        }
    }

    public var errorDescription: String? { description }
}
