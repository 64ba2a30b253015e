// The triage example's rule (docs/examples/triage-disk): a script that fetches a second stage
// from a documentation-range address (RFC 5737) and runs it through WScript.Shell.
rule example_script_dropper
{
    meta:
        description = "Script that downloads and runs a second stage"
    strings:
        $shell = "WScript.Shell" ascii
        $url = /http:\/\/203\.0\.113\.[0-9]{1,3}\/[a-z0-9]+\.bin/ ascii
        $run = ".Run(" ascii
    condition:
        all of them
}
