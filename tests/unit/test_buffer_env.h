/* test_buffer_env.h — the store's tests' fixture (test_buffer.c, test_buffer_reader.c,
 * test_store_stmt.c): a temporary folder per test, and events sealed into a buffer. Define
 * TEST_NAME (the folder's prefix) and, for padded events, SEAL_PAD before including it. */
#ifndef LABSHARE_TEST_BUFFER_ENV_H
#define LABSHARE_TEST_BUFFER_ENV_H

#define BUF_FIX static __attribute__((unused))
#ifndef SEAL_PAD
#define SEAL_PAD NULL
#endif

static char *tmp;

BUF_FIX int setup(void **state)
{
	(void)state;
	tmp = h_mkdtemp(TEST_NAME);
	return tmp ? 0 : -1;
}

BUF_FIX int teardown(void **state)
{
	(void)state;
	h_rmtree(tmp);
	free(tmp);
	return 0;
}

/* One event {"kind":"event","i":i} (with "pad": SEAL_PAD when defined), inside the caller's
 * transaction. */
BUF_FIX void seal_one(struct buffer *b, int i)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "event");
	cJSON_AddNumberToObject(o, "i", i);
	const char *pad = SEAL_PAD;
	if (pad)
		cJSON_AddStringToObject(o, "pad", pad);
	assert_true(chain_seal(b, o, NULL) > 0);
	cJSON_Delete(o);
}

/* n events in one transaction. */
BUF_FIX void seal_some(struct buffer *b, int n)
{
	assert_int_equal(buffer_begin(b), 0);
	for (int i = 0; i < n; i++)
		seal_one(b, i);
	assert_int_equal(buffer_commit(b), 0);
}

#endif
