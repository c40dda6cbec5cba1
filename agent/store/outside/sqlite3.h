/* outside/sqlite3.h — first on the include path of every layer but the store (Makefile,
 * NO_SQLITE): the SQLite file is the store's alone; other modules use store/stmt.h. */
#error "sqlite3.h is the store's: use store/stmt.h (README, Development)"
