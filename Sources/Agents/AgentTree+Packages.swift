import Doors
import Egress
import Gateway
import Policy

/// Package installs (docs/hands.md, "Installing packages"): the host resolves, judges, fetches
/// and logs; the guest takes the staged wheels piece by piece and installs them offline.
extension AgentTree {
    func install(ecosystem: String, requirements: [String], by agent: Agent) -> HandsReply {
        guard let staging = packageStaging else {
            return .failed(.failed, "this host stages no packages for its agents (its run directory is not set up for installs)")
        }
        let admitted = monitor.holding { installing.insert(agent.name).inserted }
        guard admitted else {
            return .failed(.failed, "an install of \(agent.name) is already running: an agent installs one request at a time")
        }
        defer { monitor.holding { _ = installing.remove(agent.name) } }
        let refusal = tape.map { _ in
            Decision.refused(RuleRef("record", line: nil), because: "a recorded session installs nothing: a record does not hold package files")
        }
        let installer = PackageInstaller(session: agent.session, staging: staging, resolver: egressResolver,
                                         configuration: packageConfiguration, refusal: refusal)
        do {
            if ecosystem == PackageEcosystem.apt.rawValue {
                return .ok(fields: try installer.approveApt(requirements), data: [])
            }
            let installed = try installer.install(ecosystem: ecosystem, requirements: requirements)
            return .ok(fields: installed.manifest.fields, data: [])
        } catch {
            switch error {
            case .denied: return .failed(.denied, error.description)
            case .invalid: return .failed(.invalid, error.description)
            case .failed: return .failed(.failed, error.description)
            }
        }
    }

    /// A piece of a staged file; an agent reads only its own installs. Not logged: the file's
    /// digest was logged when it was fetched, and reading it back has no effect.
    func installFile(_ install: String, file: UInt32, offset: UInt64, by agent: Agent) -> HandsReply {
        guard let staging = packageStaging else { return .failed(.notFound, "this host stages no packages") }
        switch staging.read(agent: agent.name, install: install, file: file, offset: offset, max: HandsCallProtocol.maxData) {
        case .success(let bytes): return .ok(fields: [], data: bytes)
        case .failure(let problem): return .failed(.notFound, problem.description)
        }
    }
}
