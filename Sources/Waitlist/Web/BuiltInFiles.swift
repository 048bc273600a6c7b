import Foundation

/// The static files built into the installation: `Public/` of the sources, copied into the
/// resource bundle by the `BundlePublicFiles` build step.
enum BuiltInFiles {
    /// The bundle's copy of `Public/`.
    ///
    /// - Throws: `.unavailable` when the installation lacks it (the binary was copied without its
    ///   `waitlist_Waitlist.resources` beside it).
    static func directory() throws -> String {
        let directory = Bundle.module.resourceURL?.appendingPathComponent("Public")
        var isDirectory: ObjCBool = false
        guard let directory, FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw WaitlistError(
                .unavailable, "The static files are missing from the installation (Public in waitlist_Waitlist.resources).")
        }
        return directory.path
    }
}
