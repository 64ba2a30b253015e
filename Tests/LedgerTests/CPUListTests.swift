import Ledger
import TestRandom
import Testing

@Suite struct CPUListTests {
    @Test(arguments: [
        ("0", [0]),
        ("0-3", [0, 1, 2, 3]),
        ("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]),
        ("0-3,8,10-11\n", [0, 1, 2, 3, 8, 10, 11]),
        ("5,1,3-4", [1, 3, 4, 5]),
        ("0-3,2-5", [0, 1, 2, 3, 4, 5]),
        ("0-15:2/4", [0, 1, 4, 5, 8, 9, 12, 13]),
        ("", []),
        ("\n", []),
        ("8191", [8191]),
    ])
    func parses(text: String, cpus: [Int]) throws {
        #expect(try CPUList.parse(text) == cpus)
    }

    @Test(arguments: [
        ([0, 1, 2, 3, 8, 10, 11], "0-3,8,10-11"),
        ([3, 2], "2-3"),
        ([7], "7"),
        ([], ""),
        ([1, 1, 2], "1-2"),
        ([0, 2, 4], "0,2,4"),
    ])
    func formats(cpus: [Int], text: String) throws {
        #expect(CPUList.format(cpus) == text)
        #expect(try CPUList.parse(text) == Set(cpus).sorted())
    }

    @Test func roundTripsRandomSets() throws {
        var random = SeededGenerator(seed: 0xC9)
        for _ in 0..<500 {
            let cpus = (0..<64).filter { _ in random.chance(40) }
            let text = CPUList.format(cpus)
            #expect(try CPUList.parse(text) == cpus, "\(text)")
            #expect(CPUList.format(try CPUList.parse(text)) == text)
        }
    }

    @Test(arguments: [
        ("0,,2", "cpulist \"0,,2\": item \"\" is empty (two commas, or a comma at an end)"),
        ("0-3,", "cpulist \"0-3,\": item \"\" is empty (two commas, or a comma at an end)"),
        ("3-1", "cpulist \"3-1\": item \"3-1\" is a range that runs backwards"),
        ("0-x", "cpulist \"0-x\": item \"0-x\" has \"x\", which is not a number"),
        ("-1", "cpulist \"-1\": item \"-1\" has a missing number"),
        ("0-", "cpulist \"0-\": item \"0-\" has a missing number"),
        ("+1", "cpulist \"+1\": item \"+1\" has \"+1\", which is not a number"),
        ("0 - 3", "cpulist \"0 - 3\": item \"0 - 3\" has \"0 \", which is not a number"),
        ("8192", "cpulist \"8192\": item \"8192\" names CPU 8192, above the largest id 8191"),
        ("0-99999999999999999999", "cpulist \"0-99999999999999999999\": item \"0-99999999999999999999\" names CPU 99999999999999999999, above the largest id 8191"),
        ("0-7:0/4", "cpulist \"0-7:0/4\": item \"0-7:0/4\" has a stride that uses 0 of every 4"),
        ("0-7:5/4", "cpulist \"0-7:5/4\": item \"0-7:5/4\" has a stride that uses 5 of every 4"),
        ("0-7:2", "cpulist \"0-7:2\": item \"0-7:2\" has a stride without \"/GROUP\""),
        ("3:1/2", "cpulist \"3:1/2\": item \"3:1/2\" has a stride but is not a range"),
    ])
    func refusesMalformedText(text: String, message: String) {
        #expect {
            try CPUList.parse(text)
        } throws: { error in
            (error as? CPUListError)?.description == message
        }
    }
}
