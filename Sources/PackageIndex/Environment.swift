/// The values PEP 508's marker variables take ("Environment Markers",
/// https://peps.python.org/pep-0508/#environment-markers), for the interpreter that will install
/// the packages: the guest's, not the host's.
public struct Environment: Sendable, Hashable {
    public var pythonVersion: String
    public var pythonFullVersion: String
    public var osName: String
    public var sysPlatform: String
    public var platformMachine: String
    public var platformSystem: String
    public var platformRelease: String
    public var platformVersion: String
    public var implementationName: String
    public var implementationVersion: String
    public var platformPythonImplementation: String
    /// The extra being installed; nil is read as "" (no extra).
    public var extra: String?

    public init(pythonVersion: String, pythonFullVersion: String, osName: String, sysPlatform: String, platformMachine: String,
                platformSystem: String, platformRelease: String, platformVersion: String, implementationName: String,
                implementationVersion: String, platformPythonImplementation: String, extra: String? = nil) {
        self.pythonVersion = pythonVersion
        self.pythonFullVersion = pythonFullVersion
        self.osName = osName
        self.sysPlatform = sysPlatform
        self.platformMachine = platformMachine
        self.platformSystem = platformSystem
        self.platformRelease = platformRelease
        self.platformVersion = platformVersion
        self.implementationName = implementationName
        self.implementationVersion = implementationVersion
        self.platformPythonImplementation = platformPythonImplementation
        self.extra = extra
    }

    /// Debian 12's python3 (CPython 3.11.2) on x86_64. The kernel's release and version strings
    /// depend on the guest kernel booted, so they are left empty.
    public static let debian12CPython311 = Environment(
        pythonVersion: "3.11", pythonFullVersion: "3.11.2", osName: "posix", sysPlatform: "linux", platformMachine: "x86_64",
        platformSystem: "Linux", platformRelease: "", platformVersion: "", implementationName: "cpython",
        implementationVersion: "3.11.2", platformPythonImplementation: "CPython")

    /// The same environment installing `extra`.
    public func with(extra: String?) -> Environment {
        var copy = self
        copy.extra = extra
        return copy
    }

    public func value(of variable: MarkerVariable) -> String {
        switch variable {
        case .pythonVersion: pythonVersion
        case .pythonFullVersion: pythonFullVersion
        case .osName: osName
        case .sysPlatform: sysPlatform
        case .platformMachine: platformMachine
        case .platformSystem: platformSystem
        case .platformRelease: platformRelease
        case .platformVersion: platformVersion
        case .implementationName: implementationName
        case .implementationVersion: implementationVersion
        case .platformPythonImplementation: platformPythonImplementation
        case .extra: extra ?? ""
        }
    }
}
