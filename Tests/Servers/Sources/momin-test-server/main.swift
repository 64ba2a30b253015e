// momin-test-server: the loopback servers for the egress and Brain tests (TestServers).
import Glibc
import TestServers

exit(runCommandLine(Array(CommandLine.arguments.dropFirst())))
