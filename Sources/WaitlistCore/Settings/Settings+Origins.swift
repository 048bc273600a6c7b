import Foundation

extension Settings {
    /// Whether a value is a web origin, `http(s)://host[:port]` with at most a trailing slash: what
    /// `WAITLIST_ALLOWED_ORIGINS` holds, and so fit to stand in a CORS answer and in the embed's
    /// `frame-ancestors`.
    package static func isOrigin(_ value: String) -> Bool {
        guard let parts = URLComponents(string: value), let scheme = parts.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = parts.host, !host.isEmpty, parts.user == nil, parts.password == nil, parts.query == nil, parts.fragment == nil,
            parts.path.isEmpty || parts.path == "/"
        else { return false }
        let hostCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:")
        return host.unicodeScalars.allSatisfy(hostCharacters.contains)
    }
}
