#pragma once
// Write-error injection for RocksDB: a file system whose writes fail with NoSpace while
// `full` is set, as a full disk does, and succeed again once it is cleared.

#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>
#include <string>

namespace vigil::test {

// A file system whose writes fail while `full` is set, as a full disk does.
class FullDisk : public rocksdb::FileSystemWrapper {
 public:
  explicit FullDisk(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}
  static const char* kClassName() { return "FullDisk"; }
  const char* Name() const override { return kClassName(); }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    auto s = target()->NewWritableFile(f, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  std::atomic<bool> full{false};

 private:
  struct File : rocksdb::FSWritableFileOwnerWrapper {
    File(std::unique_ptr<rocksdb::FSWritableFile> f, FullDisk* disk)
        : FSWritableFileOwnerWrapper(std::move(f)), disk_(disk) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
      if (disk_->full.load())
        return rocksdb::IOStatus::NoSpace("injected: no space left on device");
      return FSWritableFileOwnerWrapper::Append(data, o, d);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* d) override {
      if (disk_->full.load())
        return rocksdb::IOStatus::NoSpace("injected: no space left on device");
      return FSWritableFileOwnerWrapper::Append(data, o, v, d);
    }
    FullDisk* disk_;
  };
};

}  // namespace vigil::test
