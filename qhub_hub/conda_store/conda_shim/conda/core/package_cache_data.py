from conda import not_provided

PackageCacheRecord = not_provided("conda.core.package_cache_data.PackageCacheRecord")
PackageRecord = not_provided("conda.core.package_cache_data.PackageRecord")
getsize = not_provided("conda.core.package_cache_data.getsize")
read_index_json = not_provided("conda.core.package_cache_data.read_index_json")
write_as_json_to_file = not_provided("conda.core.package_cache_data.write_as_json_to_file")
