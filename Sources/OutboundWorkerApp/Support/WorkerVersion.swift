/// The worker's version, and the commit it was built from (`BuildInfo`, written by the BuildInfo plugin).
public enum WorkerVersion {
    public static let number = "0.2.0"

    /// `0.2.0 (commit 1a2b3c…)`, marked when the tree had uncommitted changes.
    public static var description: String {
        "\(number) (commit \(BuildInfo.commit)\(BuildInfo.dirty ? ", with uncommitted changes" : ""))"
    }
}
