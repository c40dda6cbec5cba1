/* test_config_bad.h — the bad configurations of test_config.c, one case each: the file (' for ",
 * @ before each place a problem points at) and every problem expected, in file order. Included
 * once, by test_config.c, after MAX_MARKS. */
#ifndef LABSHARE_TEST_CONFIG_BAD_H
#define LABSHARE_TEST_CONFIG_BAD_H

struct bad {
	const char *name;
	const char *json;               /* ' for ", @ before each place an error points at */
	const char *why[MAX_MARKS];     /* "json.path: why" for each @, in file order */
};

/* Pieces of a small valid config; each case changes one thing. */
#define AGENT    "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': 'UTC'},\n"
#define PLATFORM " 'platform': {'url': 'https://p.example/api', 'token_file': 'token'},\n"
#define CSV      "{'path': 'x.csv', 'format': 'csv', 'fields': {'start': 's', 'end': 'e'}}"
#define INSTR    " 'instruments': [{'id': 'I1', 'logs': [" CSV "]}]\n"
#define INSTR_N  " 'instruments': [{'id': 'I1', 'inner_id': '7', 'logs': [" CSV "]}]\n"
#define BUSES    " 'buses': [{'id': 'gw', 'url': 'tcp://127.0.0.1'}],\n"
#define NRII(x)  " 'nrii': {'url': 'https://n.example/ws', 'ins_code': 'X1'" x "},\n"
/* x: the members of instruments[0].modbus, or of instruments[0].logs[0] */
#define MODBUS(x) AGENT PLATFORM BUSES " 'instruments': [{'id': 'I1', 'modbus': {" x "}}]}\n"
#define MB(x)    MODBUS("'bus': 'gw', 'unit': 1, " x)
#define LOG(x)   AGENT PLATFORM " 'instruments': [{'id': 'I1', 'logs': [{" x "}]}]}\n"
#define LOG_AT(x) AGENT PLATFORM " 'instruments': [{'id': 'I1', 'logs': [@{" x "}]}]}\n"
#define RE_LOG(x) LOG("'path': 'a.log', 'format': 'regex', " x)
#define EV_LOG(x) LOG("'path': 'l.log', 'format': 'events', " x)
#define EV_START "'start_pattern': '^(.+) IN ([a-z]+)$', 'start_fields': {'time': 1, 'user': 2}"
#define EV_END   "'end_pattern': '^(.+) OUT$', 'end_fields': {'time': 1}"
#define AGENT_WITH(x) "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': 'UTC', " x "},\n" \
		      PLATFORM INSTR "}\n"
#define PLATFORM_WITH(x) AGENT " 'platform': {'url': 'https://p.example/api', " x "},\n" INSTR "}\n"
#define BUS_URL(u) AGENT PLATFORM " 'buses': [{'id': 'gw', 'url': @'" u "'}],\n" INSTR "}\n"

#define BAUDS "1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 or 230400"
#define MB0 "instruments[0].modbus."
#define LOG0 "instruments[0].logs[0]."

static const struct bad bad_cases[] = {
	/* syntax and encoding: one error, the parse stops there */
	{ "missing_comma", AGENT " 'platform': {'url': 'https://p.example/api' @'token_file': 'token'},\n"
	  INSTR "}\n", { "syntax error: unexpected '\"', expected ',' or '}'" } },
	{ "error_after_comments", "// header\n/* a block\n   comment */ {'agent': {'id': 'a1',@}}\n",
	  { "syntax error: unexpected '}', expected a key in double quotes" } },
	{ "fullwidth_comma", "{'agent': {'id': 'a1'@，'lab_code': 'L'}}\n",
	  { "syntax error: unexpected '，', expected ',' or '}'" } },
	{ "unquoted_key", "{'agent': {@id: 'a1'}}\n",
	  { "syntax error: unexpected 'i', expected a key in double quotes or '}'" } },
	{ "trailing_garbage", AGENT PLATFORM INSTR "}\n@]\n",
	  { "syntax error: unexpected ']' after the end of the document" } },
	{ "unterminated_comment", AGENT PLATFORM INSTR "}\n@/* unfinished\n",
	  { "syntax error: unterminated comment" } },
	{ "unterminated_string", "{'agent': {'id': @'a1}}\n", { "syntax error: unterminated string" } },
	{ "unclosed_object", AGENT PLATFORM INSTR "@", { "syntax error: unexpected end of input, expected ',' or '}'" } },
	{ "empty_file", "@", { "syntax error: unexpected end of input, expected a value" } },
	{ "only_comments", "// nothing here\n@", { "syntax error: unexpected end of input, expected a value" } },
	{ "invalid_value", "{'agent': {'id': @tru}}\n", { "syntax error: invalid value 'tru'" } },
	{ "invalid_utf8", "{'agent': {'id': 'a1', 'lab_code': '@\xb2\xe2'}}\n",
	  { "invalid UTF-8 (save the file as UTF-8)" } },
	{ "control_character", "{'agent': {'id': 'a@\x01'}}\n", { "control character 0x01 is not allowed" } },
	{ "nul_escape", "{'agent': {'id': 'a1', 'lab_code': 'L@\\u0000X', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.lab_code: \\u0000 is not allowed in a string" } },
	{ "root_not_object", "@[1]\n", { "(top level): must be an object" } },

	/* unknown keys, at every level */
	{ "unknown_top", AGENT PLATFORM INSTR " ,@'extra': 1}\n", { "extra: unknown key" } },
	{ "unknown_agent", AGENT_WITH("@'timezon': 'x'"),
	  { "agent.timezon: unknown key (did you mean \"timezone\"?)" } },
	{ "unknown_platform", PLATFORM_WITH("'token_file': 'token', @'retries': 3"), { "platform.retries: unknown key" } },
	{ "unknown_buffer", AGENT PLATFORM " 'buffer': {'max_mb': 10, @'max_gb': 1},\n" INSTR "}\n",
	  { "buffer.max_gb: unknown key (did you mean \"max_mb\"?)" } },
	{ "unknown_bus", AGENT PLATFORM " 'buses': [{'id': 'gw', 'url': 'tcp://127.0.0.1', @'speed': 9600}],\n"
	  INSTR "}\n", { "buses[0].speed: unknown key" } },
	{ "unknown_instrument", AGENT PLATFORM " 'instruments': [{'id': 'I1', @'nmae': 'x', 'logs': [" CSV "]}]}\n",
	  { "instruments[0].nmae: unknown key (did you mean \"name\"?)" } },
	{ "unknown_modbus", MB("'in_use': {'table': 'coil', 'address': 1}, @'slave': 1"),
	  { MB0 "slave: unknown key" } },
	{ "unknown_point", MB("'run_counter': {'table': 'input', 'address': 1, @'typ': 'u32'}"),
	  { MB0 "run_counter.typ: unknown key (did you mean \"type\"?)" } },
	{ "unknown_log", LOG("'path': 'x.csv', 'format': 'csv', @'delimiter': ';', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "delimiter: unknown key" } },
	{ "unknown_fields", LOG("'path': 'x.csv', 'format': 'csv', 'fields': {'start': 's', 'end': 'e', @'users': 'u'}"),
	  { LOG0 "fields.users: unknown key (did you mean \"user\"?)" } },
	{ "unknown_nrii", AGENT NRII(", @'password': 'p'") INSTR_N "}\n", { "nrii.password: unknown key" } },
	{ "unknown_nrii_defaults", AGENT NRII(", 'defaults': {'service_way': '占用共享', @'region': '山西'}") INSTR_N "}\n",
	  { "nrii.defaults.region: unknown key" } },
	{ "key_case_matters", AGENT_WITH("@'State_dir': '/x'"),
	  { "agent.State_dir: unknown key (did you mean \"state_dir\"?)" } },

	/* duplicates */
	{ "duplicate_key", "{'agent': {'id': 'a1', 'lab_code': 'L', @'id': 'a2', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.id: duplicate key (first at 1:12)" } },
	{ "duplicate_bus_id", AGENT PLATFORM " 'buses': [{'id': 'gw', 'url': 'tcp://10.0.0.1'}, "
	  "{'id': @'gw', 'url': 'tcp://10.0.0.2'}],\n" INSTR "}\n",
	  { "buses[1].id: duplicate bus id \"gw\" (first in buses[0])" } },
	{ "duplicate_instrument_id", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'logs': [" CSV "]},\n"
	  "  {'id': @'I1', 'logs': [" CSV "]}]}\n",
	  { "instruments[1].id: duplicate instrument id \"I1\" (first in instruments[0])" } },

	/* wrong types */
	{ "agent_not_object", "{'agent': @'a1',\n" PLATFORM INSTR "}\n", { "agent: must be an object" } },
	{ "id_not_string", "{'agent': {'id': @42, 'lab_code': 'L', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.id: must be a string" } },
	{ "column_after_chinese_comment", "{'agent': {/* 实验室编号 */ 'id': @42, 'lab_code': 'L', 'timezone': 'UTC'},\n"
	  PLATFORM INSTR "}\n", { "agent.id: must be a string" } },
	{ "required_null", "{'agent': {'id': 'a1', 'lab_code': @null, 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.lab_code: must be a string" } },
	{ "instruments_not_array", AGENT PLATFORM " 'instruments': @{'id': 'I1'}\n}\n",
	  { "instruments: must be an array" } },
	{ "instrument_not_object", AGENT PLATFORM " 'instruments': [@'I1']\n}\n",
	  { "instruments[0]: must be an object" } },
	{ "org_not_string", AGENT_WITH("'internal_orgs': ['山西大学', @7]"), { "agent.internal_orgs[1]: must be a string" } },
	{ "unit_string", MODBUS("'bus': 'gw', 'unit': @'1', 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "unit: must be an integer" } },
	{ "unit_fraction", MODBUS("'bus': 'gw', 'unit': @1.5, 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "unit: must be an integer" } },
	{ "insecure_http_string", AGENT NRII(", 'insecure_http': @'yes'") INSTR_N "}\n",
	  { "nrii.insecure_http: must be true or false" } },
	{ "scale_string", MB("'run_counter': {'table': 'input', 'address': 1, 'scale': @'x'}"),
	  { MB0 "run_counter.scale: must be a number" } },
	{ "logs_not_array", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'logs': @" CSV "}]}\n",
	  { "instruments[0].logs: must be an array" } },

	/* missing required keys: pointed at the enclosing object */
	{ "missing_agent_id", "{'agent': @{'lab_code': 'L', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.id: missing required key" } },
	{ "missing_lab_code", "{'agent': @{'id': 'a1', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.lab_code: missing required key" } },
	{ "missing_timezone", "{'agent': @{'id': 'a1', 'lab_code': 'L'},\n" PLATFORM INSTR "}\n",
	  { "agent.timezone: missing required key" } },
	{ "missing_agent", "@{" PLATFORM INSTR "}\n", { "agent: missing required key" } },
	{ "missing_instruments", "@" AGENT " 'platform': {'url': 'https://p.example/api', 'token_file': 'token'}}\n",
	  { "instruments: missing required key" } },
	{ "no_instruments", AGENT PLATFORM " 'instruments': @[]\n}\n", { "instruments: must list at least one instrument" } },
	{ "missing_instrument_id", AGENT PLATFORM " 'instruments': [@{'logs': [" CSV "]}]}\n",
	  { "instruments[0].id: missing required key" } },
	{ "missing_log_path", LOG_AT("'format': 'csv', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "path: missing required key" } },
	{ "missing_log_format", LOG_AT("'path': 'x.csv'"), { LOG0 "format: missing required key" } },
	{ "missing_token_file", AGENT " 'platform': @{'url': 'https://p.example/api'},\n" INSTR "}\n",
	  { "platform.token_file: missing required key" } },
	{ "missing_platform_url", AGENT " 'platform': @{'token_file': 'token'},\n" INSTR "}\n",
	  { "platform.url: missing required key" } },

	/* agent */
	{ "agent_id_pattern", "{'agent': {'id': @'sxu nmr', 'lab_code': 'L', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.id: must match [A-Za-z0-9._-]{1,64}" } },
	{ "agent_id_too_long", "{'agent': {'id': @'a123456789b123456789c123456789d123456789e123456789f123456789g1234',"
	  " 'lab_code': 'L', 'timezone': 'UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.id: must match [A-Za-z0-9._-]{1,64}" } },
	{ "unknown_timezone", "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': @'Mars/Olympus'},\n" PLATFORM INSTR "}\n",
	  { "agent.timezone: unknown time zone \"Mars/Olympus\" (no TZif file under {dir}/zoneinfo)" } },
	{ "timezone_not_tzif", "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': @'Bad'},\n" PLATFORM INSTR "}\n",
	  { "agent.timezone: unknown time zone \"Bad\" (no TZif file under {dir}/zoneinfo)" } },
	{ "timezone_dotdot", "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': @'../zoneinfo/UTC'},\n" PLATFORM INSTR "}\n",
	  { "agent.timezone: \"../zoneinfo/UTC\" is not an IANA time zone name (like \"Asia/Shanghai\")" } },
	{ "timezone_absolute", "{'agent': {'id': 'a1', 'lab_code': 'L', 'timezone': @'/etc/localtime'},\n" PLATFORM INSTR "}\n",
	  { "agent.timezone: \"/etc/localtime\" is not an IANA time zone name (like \"Asia/Shanghai\")" } },
	{ "user_ids_bad", AGENT_WITH("'user_ids': @'hash'"), { "agent.user_ids: must be \"plain\", \"hmac\" or \"omit\"" } },
	{ "hmac_without_key_file", "{'agent': @{'id': 'a1', 'lab_code': 'L', 'timezone': 'UTC', 'user_ids': 'hmac'},\n"
	  PLATFORM INSTR "}\n", { "agent.user_id_key_file: missing required key (user_ids is \"hmac\")" } },
	{ "hmac_key_file_missing", AGENT_WITH("'user_ids': 'hmac', 'user_id_key_file': @'nokey'"),
	  { "agent.user_id_key_file: cannot read \"{dir}/nokey\": No such file or directory" } },
	{ "hmac_key_file_empty", AGENT_WITH("'user_ids': 'hmac', 'user_id_key_file': @'key_empty'"),
	  { "agent.user_id_key_file: \"{dir}/key_empty\" is empty" } },
	{ "hmac_key_world_readable", AGENT_WITH("'user_ids': 'hmac', 'user_id_key_file': @'key644'"),
	  { "agent.user_id_key_file: \"{dir}/key644\" has mode 0644: must not be group- or world-readable (chmod 600)" } },
	{ "state_dir_empty", AGENT_WITH("'state_dir': @''"), { "agent.state_dir: must not be empty" } },

	/* platform */
	{ "token_0640", PLATFORM_WITH("'token_file': @'token640'"),
	  { "platform.token_file: \"{dir}/token640\" has mode 0640: must not be group- or world-readable (chmod 600)" } },
	{ "token_0604", PLATFORM_WITH("'token_file': @'token604'"),
	  { "platform.token_file: \"{dir}/token604\" has mode 0604: must not be group- or world-readable (chmod 600)" } },
	{ "token_0620", PLATFORM_WITH("'token_file': @'token620'"),
	  { "platform.token_file: \"{dir}/token620\" has mode 0620: must not be group- or world-writable (chmod 600)" } },
	{ "token_file_missing", PLATFORM_WITH("'token_file': @'no-token'"),
	  { "platform.token_file: cannot read \"{dir}/no-token\": No such file or directory" } },
	{ "token_file_is_folder", PLATFORM_WITH("'token_file': @'zoneinfo'"),
	  { "platform.token_file: cannot read \"{dir}/zoneinfo\": Is a directory" } },
	{ "token_empty", PLATFORM_WITH("'token_file': @'token_empty'"),
	  { "platform.token_file: \"{dir}/token_empty\" is empty" } },
	{ "token_two_lines", PLATFORM_WITH("'token_file': @'token_lines'"),
	  { "platform.token_file: the token in \"{dir}/token_lines\" must be one line of printable ASCII without spaces" } },
	{ "http_not_loopback", AGENT " 'platform': {'url': @'http://share.example.gov.cn/api', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: plain http:// is only allowed to a loopback address (use https://)" } },
	{ "http_lan_address", AGENT " 'platform': {'url': @'http://192.168.1.10:8080', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: plain http:// is only allowed to a loopback address (use https://)" } },
	{ "http_not_quite_localhost", AGENT " 'platform': {'url': @'http://localhost.example.com', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: plain http:// is only allowed to a loopback address (use https://)" } },
	{ "url_scheme", AGENT " 'platform': {'url': @'ftp://share.example.gov.cn', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: must start with https:// or http://" } },
	{ "url_credentials", AGENT " 'platform': {'url': @'https://u:p@@host/api', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: must not contain credentials (the token goes in a file)" } },
	{ "url_query", AGENT " 'platform': {'url': @'https://host/api?x=1', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: must not have a query or a fragment" } },
	{ "url_bad_port", AGENT " 'platform': {'url': @'https://host:99999/api', 'token_file': 'token'},\n"
	  INSTR "}\n", { "platform.url: has a bad port" } },
	{ "client_cert_alone", PLATFORM_WITH("'token_file': 'token', @'client_cert': 'ca.pem'"),
	  { "platform.client_cert: needs \"client_key\" too" } },
	{ "ca_file_missing", PLATFORM_WITH("'token_file': 'token', 'ca_file': @'nope.pem'"),
	  { "platform.ca_file: cannot read \"{dir}/nope.pem\": No such file or directory" } },
	{ "upload_interval_0", PLATFORM_WITH("'token_file': 'token', 'upload_interval_s': @0"),
	  { "platform.upload_interval_s: must be 1..86400" } },
	{ "proxy_number", PLATFORM_WITH("'token_file': 'token', 'proxy': @3128"), { "platform.proxy: must be a string" } },

	/* buffer */
	{ "max_mb_0", AGENT PLATFORM " 'buffer': {'max_mb': @0},\n" INSTR "}\n", { "buffer.max_mb: must be 1..1048576" } },
	{ "max_mb_negative", AGENT PLATFORM " 'buffer': {'max_mb': @-5},\n" INSTR "}\n",
	  { "buffer.max_mb: must be 1..1048576" } },
	{ "keep_acked_days_0", AGENT PLATFORM " 'buffer': {'keep_acked_days': @0},\n" INSTR "}\n",
	  { "buffer.keep_acked_days: must be 1..36500" } },

	/* buses */
	{ "tcp_port_0", BUS_URL("tcp://10.0.0.1:0"), { "buses[0].url: port must be 1..65535" } },
	{ "tcp_port_too_big", BUS_URL("tcp://10.0.0.1:70000"), { "buses[0].url: port must be 1..65535" } },
	{ "tcp_port_empty", BUS_URL("tcp://10.0.0.1:"), { "buses[0].url: port must be 1..65535" } },
	{ "tcp_ipv6_without_brackets", BUS_URL("tcp://fd00::20:502"),
	  { "buses[0].url: write an IPv6 address in brackets: tcp://[::1]:502" } },
	{ "tcp_path", BUS_URL("tcp://10.0.0.1:502/x"), { "buses[0].url: port must be 1..65535" } },
	{ "rtu_parity", BUS_URL("rtu:/dev/ttyUSB0?baud=9600&parity=X"), { "buses[0].url: parity must be N, E or O" } },
	{ "rtu_baud", BUS_URL("rtu:/dev/ttyUSB0?baud=9601"), { "buses[0].url: baud must be " BAUDS } },
	{ "rtu_unknown_parameter", BUS_URL("rtu:/dev/ttyUSB0?speed=9600"),
	  { "buses[0].url: unknown parameter \"speed\" (baud, parity, data, stop)" } },
	{ "rtu_data_bits", BUS_URL("rtu:/dev/ttyUSB0?data=9"), { "buses[0].url: data must be 5..8" } },
	{ "rtu_stop_bits", BUS_URL("rtu:/dev/ttyUSB0?stop=3"), { "buses[0].url: stop must be 1 or 2" } },
	{ "rtu_no_device", BUS_URL("rtu:ttyUSB0"),
	  { "buses[0].url: must be rtu:/dev/DEVICE[?baud=9600&parity=N&data=8&stop=1]" } },
	{ "bus_scheme", BUS_URL("udp://10.0.0.1"),
	  { "buses[0].url: must be tcp://HOST[:PORT] or rtu:/dev/DEVICE[?baud=…&parity=…&data=…&stop=…]" } },
	{ "bus_timeout_0", AGENT PLATFORM " 'buses': [{'id': 'gw', 'url': 'tcp://h', 'timeout_ms': @0}],\n" INSTR "}\n",
	  { "buses[0].timeout_ms: must be 1..60000" } },
	{ "bus_gap_too_long", AGENT PLATFORM " 'buses': [{'id': 'gw', 'url': 'tcp://h', 'gap_ms': @10001}],\n" INSTR "}\n",
	  { "buses[0].gap_ms: must be 0..10000" } },
	{ "bus_id_pattern", AGENT PLATFORM " 'buses': [{'id': @'gw 1', 'url': 'tcp://h'}],\n" INSTR "}\n",
	  { "buses[0].id: must match [A-Za-z0-9._-]{1,64}" } },

	/* modbus */
	{ "unit_0", MODBUS("'bus': 'gw', 'unit': @0, 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "unit: must be 1..247" } },
	{ "unit_248", MODBUS("'bus': 'gw', 'unit': @248, 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "unit: must be 1..247" } },
	{ "unit_missing", AGENT PLATFORM BUSES " 'instruments': [{'id': 'I1', 'modbus': @{'bus': 'gw', "
	  "'in_use': {'table': 'coil', 'address': 1}}}]}\n", { MB0 "unit: missing required key" } },
	{ "interval_0", MB("'interval_s': @0, 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "interval_s: must be 1..86400" } },
	{ "bad_table", MB("'run_counter': {'table': @'holding_register', 'address': 1}"),
	  { MB0 "run_counter.table: must be \"holding\", \"input\", \"coil\" or \"discrete\"" } },
	{ "bad_type", MB("'run_counter': {'table': 'input', 'address': 1, 'type': @'u24'}"),
	  { MB0 "run_counter.type: must be \"u16\", \"u32\", \"i32\", \"u64\" or \"f32\"" } },
	{ "type_on_coil", MB("'in_use': {'table': 'coil', 'address': 1, @'type': 'u16'}"),
	  { MB0 "in_use.type: not allowed for a coil (coils and discretes are bits)" } },
	{ "bad_word_order", MB("'run_counter': {'table': 'input', 'address': 1, 'word_order': @'middle'}"),
	  { MB0 "run_counter.word_order: must be \"big\" or \"little\"" } },
	{ "scale_0", MB("'run_counter': {'table': 'input', 'address': 1, 'scale': @0}"),
	  { MB0 "run_counter.scale: must be greater than 0" } },
	{ "scale_negative", MB("'samples_counter': {'table': 'input', 'address': 1, 'scale': @-0.5}"),
	  { MB0 "samples_counter.scale: must be greater than 0" } },
	{ "address_past_end_u32", MB("'run_counter': {'table': 'input', 'address': @65535, 'type': 'u32'}"),
	  { MB0 "run_counter.address: a u32 at 65535 runs past register 65535" } },
	{ "address_past_end_u64", MB("'run_counter': {'table': 'input', 'address': @65533, 'type': 'u64'}"),
	  { MB0 "run_counter.address: a u64 at 65533 runs past register 65535" } },
	{ "address_too_big", MB("'run_counter': {'table': 'input', 'address': @65536}"),
	  { MB0 "run_counter.address: must be 0..65535" } },
	{ "address_missing", MB("'run_counter': @{'table': 'input'}"), { MB0 "run_counter.address: missing required key" } },
	{ "in_use_register_without_above", MB("'in_use': @{'table': 'input', 'address': 30, 'type': 'f32'}"),
	  { MB0 "in_use.above: missing required key" } },
	{ "in_use_bit_with_above", MB("'in_use': {'table': 'discrete', 'address': 3, @'above': 1}"),
	  { MB0 "in_use.above: not allowed for a discrete (a bit is in use when set)" } },
	{ "above_on_counter", MB("'run_counter': {'table': 'input', 'address': 1, @'above': 5}"),
	  { MB0 "run_counter.above: only for \"in_use\" on a register" } },
	{ "coil_run_counter", MB("'run_counter': {'table': @'coil', 'address': 1}"),
	  { MB0 "run_counter.table: a counter must be a register (\"holding\" or \"input\")" } },
	{ "unknown_bus_reference", MODBUS("'bus': @'gw9', 'unit': 1, 'in_use': {'table': 'coil', 'address': 1}"),
	  { MB0 "bus: unknown bus \"gw9\"" } },
	{ "no_buses_configured", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'modbus': {'bus': @'gw', 'unit': 1, "
	  "'in_use': {'table': 'coil', 'address': 1}}}]}\n", { MB0 "bus: unknown bus \"gw\" (no \"buses\" are configured)" } },
	{ "modbus_without_points", AGENT PLATFORM BUSES " 'instruments': [{'id': 'I1', 'modbus': @{'bus': 'gw', 'unit': 1}}]}\n",
	  { "instruments[0].modbus: needs at least one of \"run_counter\", \"samples_counter\" or \"in_use\"" } },

	/* instruments */
	{ "neither_modbus_nor_logs", AGENT PLATFORM " 'instruments': [@{'id': 'I1', 'name': 'NMR'}]}\n",
	  { "instruments[0]: needs \"modbus\" or \"logs\"" } },
	{ "empty_logs_and_no_modbus", AGENT PLATFORM " 'instruments': [@{'id': 'I1', 'logs': []}]}\n",
	  { "instruments[0]: needs \"modbus\" or \"logs\"" } },
	{ "instrument_id_pattern", AGENT PLATFORM " 'instruments': [{'id': @'SX/INS/1', 'logs': [" CSV "]}]}\n",
	  { "instruments[0].id: must match [A-Za-z0-9._-]{1,64}" } },
	{ "rated_hours_0", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'rated_hours': @0, 'logs': [" CSV "]}]}\n",
	  { "instruments[0].rated_hours: must be 1..8784" } },
	{ "rated_hours_negative", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'rated_hours': @-800, 'logs': [" CSV "]}]}\n",
	  { "instruments[0].rated_hours: must be 1..8784" } },
	{ "worth_negative", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'worth_wan': @-1, 'logs': [" CSV "]}]}\n",
	  { "instruments[0].worth_wan: must be 0 or more" } },
	{ "nrii_profile_nested", AGENT PLATFORM " 'instruments': [{'id': 'I1', 'nrii_profile': {'cname': 'x', 'dims': @{'w': 1}},"
	  " 'logs': [" CSV "]}]}\n", { "instruments[0].nrii_profile.dims: must be a string or a number" } },

	/* logs */
	{ "time_format_lone_percent", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: ends with an incomplete conversion \"%\"" } },
	{ "time_format_trailing_percent", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%Y-%m-%d %', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: ends with an incomplete conversion \"%\"" } },
	{ "time_format_unknown_conversion", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%Y-%m-%d %Q', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: \"%Q\" is not a strptime(3) conversion" } },
	{ "time_format_bad_modifier", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%Y-%m-%Ed', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: \"%Ed\" is not a strptime(3) conversion" } },
	{ "time_format_lone_modifier", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%Y-%m-%d %O', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: ends with an incomplete conversion \"%O\"" } },
	{ "time_format_no_date", LOG("'path': 'x.csv', 'format': 'csv', 'time_format': @'%H:%M', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "time_format: gives no date (it needs a year, a month and a day, e.g. \"%Y-%m-%d %H:%M:%S\")" } },
	{ "follow_symlinks_not_bool", LOG("'path': 'x.csv', 'format': 'csv', 'follow_symlinks': @'yes', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "follow_symlinks: must be true or false" } },
	{ "follow_symlinks_misspelt", LOG("'path': 'x.csv', 'format': 'csv', @'follow_symlink': true, 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "follow_symlink: unknown key (did you mean \"follow_symlinks\"?)" } },
	{ "bad_format", LOG("'path': 'x', 'format': @'xml'"),
	  { LOG0 "format: must be \"csv\", \"jsonl\", \"regex\" or \"events\"" } },
	{ "bad_encoding", LOG("'path': 'x.csv', 'format': 'csv', 'encoding': @'latin1', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "encoding: must be \"utf-8\", \"utf8\", \"gbk\" or \"gb18030\"" } },
	{ "csv_without_fields", LOG_AT("'path': 'x.csv', 'format': 'csv'"), { LOG0 "fields: missing required key" } },
	{ "csv_without_start", LOG("'path': 'x.csv', 'format': 'csv', 'fields': @{'end': 'e'}"),
	  { LOG0 "fields.start: missing required key" } },
	{ "neither_end_nor_duration", LOG("'path': 'x.csv', 'format': 'jsonl', 'fields': @{'start': 's', 'user': 'u'}"),
	  { LOG0 "fields.end: missing required key (or \"duration\")" } },
	{ "end_and_duration", LOG("'path': 'x.csv', 'format': 'csv', 'fields': {'start': 's', 'end': 'e', @'duration': 'd'}"),
	  { LOG0 "fields.duration: give \"end\" or \"duration\", not both" } },
	{ "time_in_csv_fields", LOG("'path': 'x.csv', 'format': 'csv', 'fields': {'start': 's', 'end': 'e', @'time': 't'}"),
	  { LOG0 "fields.time: only used by \"events\" logs" } },
	{ "csv_field_number", LOG("'path': 'x.csv', 'format': 'csv', 'fields': {'start': @1, 'end': 'e'}"),
	  { LOG0 "fields.start: must be a string" } },
	{ "pattern_on_csv", LOG("'path': 'x.csv', 'format': 'csv', @'pattern': 'x', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "pattern: not used by format \"csv\"" } },
	{ "regex_without_pattern", LOG_AT("'path': 'a.log', 'format': 'regex', 'fields': {'start': 1, 'end': 2}"),
	  { LOG0 "pattern: missing required key" } },
	{ "invalid_regex", RE_LOG("'pattern': @'([0-9]+', 'fields': {'start': 1, 'end': 1}"),
	  { LOG0 "pattern: invalid regular expression: Unmatched ( or \\(" } },
	{ "regex_too_complex", RE_LOG("'pattern': @'((a{255}){255}){255}', 'fields': {'start': 1, 'end': 1}"),
	  { LOG0 "pattern: too complex: its repeats expand to over 20000 elements" } },
	{ "regex_stacked_plus", RE_LOG("'pattern': @'(x[a-z]+++++++++++++++++++++++)', 'fields': {'start': 1, 'end': 1}"),
	  { LOG0 "pattern: too complex: its repeats expand to over 20000 elements" } },
	{ "group_past_pattern", RE_LOG("'pattern': '([0-9]+) ([0-9]+)', 'fields': {'start': 1, 'end': @3}"),
	  { LOG0 "fields.end: must be 1..2: the pattern has 2 groups" } },
	{ "group_0", RE_LOG("'pattern': '([0-9]+) ([0-9]+)', 'fields': {'start': @0, 'end': 2}"),
	  { LOG0 "fields.start: must be 1..2: the pattern has 2 groups" } },
	{ "group_not_integer", RE_LOG("'pattern': '([0-9]+) ([0-9]+)', 'fields': {'start': @'1', 'end': 2}"),
	  { LOG0 "fields.start: must be an integer" } },
	{ "pattern_without_groups", RE_LOG("'pattern': '^x$', 'fields': {'start': @1, 'duration': @1}"),
	  { LOG0 "fields.start: the pattern has no groups", LOG0 "fields.duration: the pattern has no groups" } },
	{ "events_without_end_pattern", LOG_AT("'path': 'l.log', 'format': 'events', " EV_START ", 'end_fields': {'time': 1}"),
	  { LOG0 "end_pattern: missing required key" } },
	{ "events_without_time", EV_LOG("'start_pattern': '^(.+) IN$', 'start_fields': @{'user': 1}, " EV_END),
	  { LOG0 "start_fields.time: missing required key" } },
	{ "events_end_in_fields", EV_LOG(EV_START ", 'end_pattern': '^(.+) OUT$', 'end_fields': {'time': 1, @'end': 1}"),
	  { LOG0 "end_fields.end: not used by \"events\" logs (a session's times come from \"time\")" } },
	{ "events_group_past_end_pattern", EV_LOG(EV_START ", 'end_pattern': '^(.+) OUT$', 'end_fields': {'time': 1, 'user': @2}"),
	  { LOG0 "end_fields.user: must be 1: the pattern has 1 group" } },
	{ "fields_on_events", EV_LOG(EV_START ", " EV_END ", @'fields': {'start': 1}"),
	  { LOG0 "fields: not used by format \"events\"" } },
	{ "max_session_h_0", LOG("'path': 'x.csv', 'format': 'csv', 'max_session_h': @0, 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "max_session_h: must be greater than 0 and at most 168" } },
	{ "max_session_h_200", LOG("'path': 'x.csv', 'format': 'csv', 'max_session_h': @200, 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "max_session_h: must be greater than 0 and at most 168" } },
	{ "log_path_empty", LOG("'path': @'', 'format': 'csv', 'fields': {'start': 's', 'end': 'e'}"),
	  { LOG0 "path: must not be empty" } },

	/* platform and nrii */
	{ "neither_platform_nor_nrii", "@" AGENT INSTR "}\n", { "platform: missing required key (or \"nrii\")" } },
	{ "nrii_plain_http", AGENT " 'nrii': {'url': @'http://nrii.example.gov.cn/WS_shanxi/cxf/instru', 'ins_code': 'X1'},\n"
	  INSTR_N "}\n", { "nrii.url: plain http:// needs \"insecure_http\": true" } },
	{ "nrii_without_inner_id", AGENT NRII("") " 'instruments': [@{'id': 'I1', 'logs': [" CSV "]}]}\n",
	  { "instruments[0].inner_id: missing required key (\"nrii\" is configured)" } },
	{ "nrii_without_ins_code", AGENT " 'nrii': @{'url': 'https://n.example/ws'},\n" INSTR_N "}\n",
	  { "nrii.ins_code: missing required key" } },
	{ "nrii_direction_139", AGENT NRII(", 'defaults': {'service_direction': @139}") INSTR_N "}\n",
	  { "nrii.defaults.service_direction: must be 135..138" } },
	{ "nrii_codes", AGENT NRII(", 'codes': @'names'") INSTR_N "}\n", { "nrii.codes: must be \"int\" or \"labels\"" } },

	/* several errors: all of them, in file order, though found in another order */
	{ "several_errors",
	  "{'instruments': [{'id': @'bad id', 'logs': [" CSV "]}],\n"
	  " 'agent': @{'id': 'a1', 'timezone': @'Nowhere/Zone'},\n"
	  " 'platform': {'url': 'https://p.example/api', 'token_file': 'token', @'timeout': 5},\n"
	  " 'buffer': {'max_mb': @0}}\n",
	  { "instruments[0].id: must match [A-Za-z0-9._-]{1,64}",
	    "agent.lab_code: missing required key",
	    "agent.timezone: unknown time zone \"Nowhere/Zone\" (no TZif file under {dir}/zoneinfo)",
	    "platform.timeout: unknown key (did you mean \"timeout_s\"?)",
	    "buffer.max_mb: must be 1..1048576" } },
};

#endif
