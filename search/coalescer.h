// search/coalescer.h — turning concurrent single requests into batches (leader/follower, as databases
// do "group commit"): the first caller runs the batch function on every request queued so far, while
// the callers that arrive meanwhile queue up for the next batch; each gets its own result back.
//
// Where it sits: web server threads → Embedder::embed_text (batched text-tower forward passes) and
// IndexDb::search (one Faiss call for many queries: one pass over the vectors). Both are throughput-
// bound on a few cores — a batch of 8 costs far less than 8 single calls — so under concurrent load
// batching cuts the latency of every request, and a lone request runs at once, unbatched.
#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

namespace vislang::search {

template <typename Request, typename Result>
class Coalescer {
 public:
  // Returns fn(batch)[i] for this caller's request, where fn: (const std::vector<const Request*>&) ->
  // std::vector<Result> (same size and order). An exception from fn is rethrown to every caller of the batch.
  template <typename Fn>
  Result run(Request request, Fn&& fn) {
    Slot me{std::move(request), Result(), nullptr, false};
    std::unique_lock<std::mutex> lk(mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (busy_) {
        cv_.wait(lk);
        continue;
      }
      busy_ = true;  // this caller leads: take everything queued, including itself
      std::vector<Slot*> batch;
      batch.swap(queue_);
      lk.unlock();
      std::vector<const Request*> requests;
      for (Slot* s : batch) requests.push_back(&s->request);
      std::vector<Result> results;
      std::exception_ptr error;
      try {
        results = fn(requests);
        if (results.size() != batch.size()) throw std::logic_error("Coalescer: batch function returned a wrong count");
      } catch (...) {
        error = std::current_exception();
      }
      lk.lock();
      for (size_t i = 0; i < batch.size(); ++i) {
        if (error) batch[i]->error = error;
        else batch[i]->result = std::move(results[i]);
        batch[i]->done = true;
      }
      busy_ = false;
      cv_.notify_all();
    }
    lk.unlock();
    if (me.error) std::rethrow_exception(me.error);
    return std::move(me.result);
  }

 private:
  struct Slot {
    Request request;
    Result result;
    std::exception_ptr error;
    bool done;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot*> queue_;
  bool busy_ = false;
};

}  // namespace vislang::search
