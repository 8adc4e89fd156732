/* SPDX-License-Identifier: MIT */
/*
 * Client-facing bookkeeping: the client table (TOCS'02 §4.1: the last
 * request number and reply per client, so a duplicate is answered, not
 * executed again) and the pending requests (received, not executed yet:
 * the primary batches them, backups time them for the view change).
 * Both are bounded by options.
 */
#include "pbft.h"

#include <stdlib.h>

/* ---- map ---- */

static size_t hash_u64(uint64_t key)
{
	key ^= key >> 33;
	key *= UINT64_C(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return (size_t)key;
}

int oskr__pbft_map_init(struct pbft_map *map, size_t max_entries)
{
	size_t capacity = 16;
	while (capacity < 2 * max_entries)
		capacity *= 2;
	map->slots = calloc(capacity, sizeof(*map->slots));
	if (!map->slots)
		return -ENOMEM;
	map->mask = capacity - 1;
	map->count = 0;
	return 0;
}

void oskr__pbft_map_fini(struct pbft_map *map)
{
	free(map->slots);
	map->slots = NULL;
}

void *oskr__pbft_map_get(const struct pbft_map *map, uint64_t key)
{
	for (size_t i = hash_u64(key) & map->mask;; i = (i + 1) & map->mask) {
		if (!map->slots[i].value)
			return NULL;
		if (map->slots[i].key == key)
			return map->slots[i].value;
	}
}

void oskr__pbft_map_put(struct pbft_map *map, uint64_t key, void *value)
{
	size_t i = hash_u64(key) & map->mask;
	for (; map->slots[i].value; i = (i + 1) & map->mask) {
		if (map->slots[i].key == key) {
			map->slots[i].value = value;
			return;
		}
	}
	map->slots[i].key = key;
	map->slots[i].value = value;
	map->count++;
}

void oskr__pbft_map_del(struct pbft_map *map, uint64_t key)
{
	size_t i = hash_u64(key) & map->mask;
	for (; map->slots[i].value; i = (i + 1) & map->mask)
		if (map->slots[i].key == key)
			break;
	if (!map->slots[i].value)
		return;
	/* Backward-shift deletion keeps probe chains intact without
	 * tombstones. */
	size_t hole = i;
	for (size_t j = (i + 1) & map->mask; map->slots[j].value;
	     j = (j + 1) & map->mask) {
		size_t home = hash_u64(map->slots[j].key) & map->mask;
		/* Move j into the hole unless its home lies in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j)
				       : (home > hole || home <= j);
		if (!stays) {
			map->slots[hole] = map->slots[j];
			hole = j;
		}
	}
	map->slots[hole].value = NULL;
	map->slots[hole].key = 0;
	map->count--;
}

/* ---- client table ---- */

int oskr__pbft_clients_init(struct pbft_client_table *t, uint32_t capacity)
{
	t->capacity = capacity;
	return oskr__pbft_map_init(&t->map, capacity);
}

static void clients_clear(struct pbft_client_table *t)
{
	for (size_t i = 0; i <= t->map.mask; i++) {
		struct pbft_client_record *rec = t->map.slots[i].value;
		if (rec) {
			free(rec->result);
			free(rec);
			t->map.slots[i].value = NULL;
		}
	}
	t->map.count = 0;
}

void oskr__pbft_clients_fini(struct pbft_client_table *t)
{
	if (!t->map.slots)
		return;
	clients_clear(t);
	oskr__pbft_map_fini(&t->map);
}

struct pbft_client_record *oskr__pbft_client_find(struct pbft_client_table *t,
						  uint64_t client_id)
{
	return oskr__pbft_map_get(&t->map, client_id);
}

/* Evict the least recently executed client. O(capacity), only when a new
 * client arrives at a full table. */
static void clients_evict(struct pbft_client_table *t)
{
	struct pbft_client_record *oldest = NULL;
	for (size_t i = 0; i <= t->map.mask; i++) {
		struct pbft_client_record *rec = t->map.slots[i].value;
		if (rec && (!oldest || rec->op_index < oldest->op_index))
			oldest = rec;
	}
	if (!oldest)
		return;
	oskr__pbft_map_del(&t->map, oldest->client_id);
	free(oldest->result);
	free(oldest);
}

int oskr__pbft_client_record(struct pbft_client_table *t,
			     const struct pbft_request *req, uint64_t op_index,
			     uint64_t view, const uint8_t *result,
			     uint32_t result_len)
{
	struct pbft_client_record *rec =
		oskr__pbft_map_get(&t->map, req->client_id);
	uint8_t *copy = malloc(result_len ? result_len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, result, result_len);
	if (!rec) {
		if (t->map.count >= t->capacity)
			clients_evict(t);
		rec = calloc(1, sizeof(*rec));
		if (!rec) {
			free(copy);
			return -ENOMEM;
		}
		rec->client_id = req->client_id;
		oskr__pbft_map_put(&t->map, req->client_id, rec);
	}
	free(rec->result);
	rec->result = copy;
	rec->result_len = result_len;
	rec->request_number = req->request_number;
	rec->op_index = op_index;
	rec->view = view;
	rec->addr = req->addr;
	return 0;
}

static int compare_records(const void *a, const void *b)
{
	const struct pbft_client_record *x =
		*(const struct pbft_client_record *const *)a;
	const struct pbft_client_record *y =
		*(const struct pbft_client_record *const *)b;
	return x->client_id < y->client_id ? -1 : x->client_id > y->client_id;
}

/* Layout: u32 count, then per client (sorted by id): client_id u64,
 * request_number u64, op_index u64, addr, result_len u32, result. The
 * view and signature of the cached reply are not state: a replica signs
 * a fresh reply when it answers a duplicate. */
int oskr__pbft_clients_serialize(struct pbft_client_table *t, uint8_t **out,
				 size_t *out_len)
{
	size_t count = t->map.count, len = 4;
	struct pbft_client_record **recs =
		malloc((count ? count : 1) * sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i <= t->map.mask; i++) {
		struct pbft_client_record *rec = t->map.slots[i].value;
		if (rec) {
			recs[k++] = rec;
			len += 8 + 8 + 8 + OSKR_ADDR_SIZE + 4 + rec->result_len;
		}
	}
	qsort(recs, count, sizeof(*recs), compare_records);
	uint8_t *data = malloc(len);
	if (!data) {
		free(recs);
		return -ENOMEM;
	}
	struct pbft_writer w = { .data = data, .capacity = len };
	pbft_put_u32(&w, (uint32_t)count);
	for (size_t i = 0; i < count; i++) {
		pbft_put_u64(&w, recs[i]->client_id);
		pbft_put_u64(&w, recs[i]->request_number);
		pbft_put_u64(&w, recs[i]->op_index);
		pbft_put(&w, recs[i]->addr.bytes, OSKR_ADDR_SIZE);
		pbft_put_u32(&w, recs[i]->result_len);
		pbft_put(&w, recs[i]->result, recs[i]->result_len);
	}
	free(recs);
	*out = data;
	*out_len = w.len;
	return 0;
}

int oskr__pbft_clients_restore(struct pbft_client_table *t,
			       struct pbft_reader *r)
{
	uint32_t count = pbft_get_u32(r);
	if (r->bad || count > t->capacity)
		return -EINVAL;
	clients_clear(t);
	for (uint32_t i = 0; i < count; i++) {
		struct pbft_request req = { 0 };
		req.client_id = pbft_get_u64(r);
		req.request_number = pbft_get_u64(r);
		uint64_t op_index = pbft_get_u64(r);
		const uint8_t *addr = pbft_get(r, OSKR_ADDR_SIZE);
		uint32_t result_len = pbft_get_u32(r);
		const uint8_t *result = pbft_get(r, result_len);
		if (r->bad)
			return -EINVAL;
		memcpy(req.addr.bytes, addr, OSKR_ADDR_SIZE);
		int err = oskr__pbft_client_record(t, &req, op_index, 0,
						   result, result_len);
		if (err)
			return err;
	}
	return 0;
}

/* ---- pending requests ---- */

static void list_remove(struct pbft_pending_list *list,
			struct pbft_pending *item)
{
	if (item->prev)
		item->prev->next = item->next;
	else
		list->head = item->next;
	if (item->next)
		item->next->prev = item->prev;
	else
		list->tail = item->prev;
	item->prev = item->next = NULL;
	list->count--;
}

static void list_append(struct pbft_pending_list *list,
			struct pbft_pending *item)
{
	item->next = NULL;
	item->prev = list->tail;
	if (list->tail)
		list->tail->next = item;
	else
		list->head = item;
	list->tail = item;
	list->count++;
}

int oskr__pbft_pending_init(struct pbft_pending_set *p, uint32_t capacity)
{
	memset(p, 0, sizeof(*p));
	p->capacity = capacity;
	return oskr__pbft_map_init(&p->map, capacity);
}

void oskr__pbft_pending_fini(struct pbft_pending_set *p)
{
	struct pbft_pending_list *lists[] = { &p->queue, &p->proposed };
	for (int l = 0; l < 2; l++) {
		while (lists[l]->head) {
			struct pbft_pending *item = lists[l]->head;
			list_remove(lists[l], item);
			free(item);
		}
	}
	if (p->map.slots)
		oskr__pbft_map_fini(&p->map);
}

static void pending_remove(struct pbft_pending_set *p,
			   struct pbft_pending *item)
{
	list_remove(item->proposed ? &p->proposed : &p->queue, item);
	oskr__pbft_map_del(&p->map, item->req.client_id);
	free(item);
}

int oskr__pbft_pending_add(struct pbft_pending_set *p,
			   const struct pbft_request *req, uint64_t now_ns)
{
	struct pbft_pending *old = oskr__pbft_map_get(&p->map, req->client_id);
	if (old) {
		if (old->req.request_number >= req->request_number)
			return -EALREADY;
		/* A client has one outstanding request: a newer number
		 * means the older one was answered. */
		pending_remove(p, old);
	}
	if (p->map.count >= p->capacity)
		return -ENOSPC;
	struct pbft_pending *item = malloc(sizeof(*item) + req->op_len);
	if (!item)
		return -ENOMEM;
	memset(item, 0, sizeof(*item));
	item->req = *req;
	memcpy(item->op_copy, req->op, req->op_len);
	item->req.op = item->op_copy;
	item->arrival_ns = now_ns;
	list_append(&p->queue, item);
	oskr__pbft_map_put(&p->map, req->client_id, item);
	return 0;
}

void oskr__pbft_pending_done(struct pbft_pending_set *p, uint64_t client_id,
			     uint64_t upto)
{
	struct pbft_pending *item = oskr__pbft_map_get(&p->map, client_id);
	if (item && item->req.request_number <= upto)
		pending_remove(p, item);
}

void oskr__pbft_pending_unpropose(struct pbft_pending_set *p)
{
	/* Proposed requests go back in front, keeping their order. */
	while (p->proposed.tail) {
		struct pbft_pending *item = p->proposed.tail;
		list_remove(&p->proposed, item);
		item->proposed = false;
		item->prev = NULL;
		item->next = p->queue.head;
		if (p->queue.head)
			p->queue.head->prev = item;
		else
			p->queue.tail = item;
		p->queue.head = item;
		p->queue.count++;
	}
}

void oskr__pbft_pending_mark_proposed(struct pbft_pending_set *p,
				      struct pbft_pending *item)
{
	list_remove(&p->queue, item);
	item->proposed = true;
	list_append(&p->proposed, item);
}

void oskr__pbft_pending_prune(struct pbft_pending_set *p,
			      struct pbft_client_table *t)
{
	struct pbft_pending_list *lists[] = { &p->queue, &p->proposed };
	for (int l = 0; l < 2; l++) {
		struct pbft_pending *item = lists[l]->head;
		while (item) {
			struct pbft_pending *next = item->next;
			const struct pbft_client_record *rec =
				oskr__pbft_client_find(t, item->req.client_id);
			if (rec &&
			    rec->request_number >= item->req.request_number)
				pending_remove(p, item);
			item = next;
		}
	}
}
