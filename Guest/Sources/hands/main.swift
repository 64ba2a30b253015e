// hands: what an agent inside its VM runs to call host tools (docs/hands.md). One call per run:
// the arguments become a hands call frame, momin-init relays it over vsock to the host, and the
// reply becomes stdout and the exit status. Usage errors exit 64 with the usage; a failed call
// prints its message and exits with its code's status; momin-init out of reach is exit 70.
// The image links /usr/bin/hands to momin-init, which runs the same `HandsMain`.
import HandsClient

HandsMain.run(Array(CommandLine.arguments.dropFirst()))
